/* The customer's leg, dialled from the agent's own session by mod_dptools'
 * `bridge` (what FreeSWITCH's own `originate … &bridge(...)` runs), on the
 * agent's session thread: switch_ivr_originate() with the agent as caller,
 * which plays `transfer_ringback` while the customer's phone rings and
 * bridges the two on the carrier's early media (183 with SDP) or on the
 * answer. A bridge on early media that ends unanswered (183, then 503)
 * leaves the agent up, its cause in `last_bridge_hangup_cause`. Nothing of
 * ours runs on that thread: only FreeSWITCH's own applications.
 *
 * The first attempt starts the way `originate … &bridge` does: the answered
 * agent, still where switch_ivr_originate() left it (CS_CONSUME_MEDIA), is
 * given the extension `bridge <dial>`, `park` and sent to CS_EXECUTE, with no
 * hand-off to a park loop in between. A failed attempt (continue_on_fail)
 * falls through to that `park`; the next one is queued on it as a private
 * event, as is the ringback of a call waiting for its trunk.
 *
 * The attempt's own variables (its uuid, caller id, tags: validated tokens)
 * lead its dial string as `{name=value,…}` (src/ffi/dial.rs). The rest (a
 * CRM's X- headers) reach the new leg without ever being parsed out of a
 * dial string: each is set on the agent as `_nolocal_<name>` and listed in
 * its `export_vars`, which originate copies verbatim, name stripped of the
 * prefix, into the new leg's variables. */
#include <switch.h>
#include "zorio_c2c_shim.h"

#define EXPORT_PREFIX "_nolocal_"

/* Whether the `export_vars` entry [s, s + n) is one of ours: `_nolocal_`
 * and the name of one of `vars`. */
static int is_ours(const char *s, size_t n, switch_event_t *vars)
{
	size_t plen = strlen(EXPORT_PREFIX);
	switch_event_header_t *hp;

	if (n <= plen || strncmp(s, EXPORT_PREFIX, plen)) {
		return 0;
	}
	for (hp = vars->headers; hp; hp = hp->next) {
		if (strlen(hp->name) == n - plen && !strncmp(s + plen, hp->name, n - plen)) {
			return 1;
		}
	}
	return 0;
}

/* Sets (or, with set = 0, clears) the exports of `vars` on `channel`. The
 * channel's own `export_vars` entries (an admin's, from the directory or a
 * dialplan) stay, in their order, ahead of ours; only ours are taken off.
 * Everything it builds is short: on the stack, or malloc'd to its size,
 * never a 1 KiB stream (a request that large makes glibc consolidate the
 * arena's free chunks, which the switch's threads keep full: measured at
 * 0.2 ms a call on an overloaded switch). */
static void exports(switch_channel_t *channel, switch_event_t *vars, int set)
{
	switch_event_header_t *hp;
	char stack_list[512], stack_name[128];
	char *list = stack_list, *at;
	const char *old, *s;
	size_t need = 1;

	if (!vars || !vars->headers) {
		/* Nothing to export (the attempt's own variables lead its dial
		   string): the agent's channel is left as it is. */
		return;
	}
	/* A copy in the session's pool: read while ours are being set. */
	old = switch_channel_get_variable(channel, SWITCH_EXPORT_VARS_VARIABLE);
	if (old) {
		need += strlen(old) + 1;
	}
	for (hp = vars->headers; hp; hp = hp->next) {
		need += strlen(EXPORT_PREFIX) + strlen(hp->name) + 1;
	}
	if (need > sizeof(stack_list) && !(list = malloc(need))) {
		return;
	}
	at = list;
	for (s = old; s && *s;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t) (comma - s) : strlen(s);
		if (n && !is_ours(s, n, vars)) {
			if (at != list) {
				*at++ = ',';
			}
			memcpy(at, s, n);
			at += n;
		}
		s += comma ? n + 1 : n;
	}
	*at = '\0';
	for (hp = vars->headers; hp; hp = hp->next) {
		size_t len = strlen(EXPORT_PREFIX) + strlen(hp->name) + 1;
		char *name = len <= sizeof(stack_name) ? stack_name : malloc(len);
		if (!name) {
			continue;
		}
		snprintf(name, len, EXPORT_PREFIX "%s", hp->name);
		/* No variable check: a value is text, never expanded here. */
		switch_channel_set_variable_var_check(channel, name, set ? hp->value : NULL, SWITCH_FALSE);
		if (set) {
			if (at != list) {
				*at++ = ',';
			}
			memcpy(at, name, len);
			at += len - 1;
		}
		if (name != stack_name) {
			free(name);
		}
	}
	switch_channel_set_variable(channel, SWITCH_EXPORT_VARS_VARIABLE, at != list ? list : NULL);
	if (list != stack_list) {
		free(list);
	}
}

/* Names the extension we give the agent, so that its `park` is known as ours. */
#define OUR_EXTENSION "zorio_c2c"

typedef enum { AGENT_GONE, AGENT_HELD, AGENT_PARKED, AGENT_BUSY } agent_at;

/* Where the answered agent is: held where its originate left it, parked (in
 * CS_PARK, or in the `park` of our extension), gone, or between (busy). */
static agent_at where(switch_channel_t *channel)
{
	switch_caller_extension_t *ext;
	switch_channel_state_t state = switch_channel_get_state(channel);
	switch_channel_state_t running = switch_channel_get_running_state(channel);

	if (!switch_channel_up_nosig(channel)) {
		return AGENT_GONE;
	}
	if (!switch_channel_ready(channel)) {
		return AGENT_BUSY;
	}
	/* As its originate left it (its thread may still be on its way in). */
	if (state == CS_CONSUME_MEDIA) {
		return AGENT_HELD;
	}
	/* A state change pending: an originate started now would find its
	   caller not ready and give up at once (ORIGINATOR_CANCEL). */
	if (state != running) {
		return AGENT_BUSY;
	}
	if (state == CS_PARK) {
		return AGENT_PARKED;
	}
	/* Our extension's apps all started: the last, `park`, is running. */
	if (state == CS_EXECUTE && (ext = switch_channel_get_caller_extension(channel)) && ext->extension_name &&
		!strcmp(ext->extension_name, OUR_EXTENSION) && !ext->current_application) {
		return AGENT_PARKED;
	}
	return AGENT_BUSY;
}

/* Runs `first` (with `arg`), then `park`, on the held agent: its extension. */
static int run_held(switch_core_session_t *session, const char *first, const char *arg)
{
	switch_channel_t *channel = switch_core_session_get_channel(session);
	switch_caller_extension_t *ext = switch_caller_extension_new(session, OUR_EXTENSION, OUR_EXTENSION);

	if (!ext) {
		return 0;
	}
	if (first) {
		switch_caller_extension_add_application(session, ext, first, arg);
	}
	switch_caller_extension_add_application(session, ext, "park", NULL);
	switch_channel_set_caller_extension(channel, ext);
	switch_channel_set_state(channel, CS_EXECUTE);
	return 1;
}

/* Queues `app arg` on the parked agent; `app_uuid` (or NULL) comes back as
 * the Application-UUID of its CHANNEL_EXECUTE_COMPLETE. */
static int queue_on_parked(switch_core_session_t *session, const char *app, const char *arg, const char *app_uuid)
{
	switch_event_t *cmd = NULL;

	if (switch_event_create(&cmd, SWITCH_EVENT_COMMAND) != SWITCH_STATUS_SUCCESS) {
		return 0;
	}
	switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "call-command", "execute");
	switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "execute-app-name", app);
	switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "execute-app-arg", arg);
	if (app_uuid) {
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "event-uuid", app_uuid);
	}
	if (switch_core_session_queue_private_event(session, &cmd, SWITCH_FALSE) != SWITCH_STATUS_SUCCESS) {
		switch_event_destroy(&cmd);
		return 0;
	}
	return 1;
}

int zc2c_dial_from(const char *agent_uuid, const char *dial_string, zc2c_vars *vars, const char *ringback,
				   const char *app_uuid)
{
	switch_core_session_t *session;
	switch_channel_t *channel;
	agent_at at;
	int queued = 0;

	if (!agent_uuid || !dial_string || !vars || !app_uuid || !(session = switch_core_session_locate(agent_uuid))) {
		return 0;
	}
	channel = switch_core_session_get_channel(session);
	at = where(channel);
	if (at == AGENT_BUSY) {
		/* e.g. the previous attempt's `bridge` has returned but `park` has not
		   started yet: come back shortly. */
		switch_core_session_rwunlock(session);
		return -1;
	}
	if (at != AGENT_GONE) {
		exports(channel, (switch_event_t *) vars, 1);
		/* A failed attempt leaves the agent up, in `park`, for the next trunk. */
		switch_channel_set_variable(channel, "continue_on_fail", "true");
		/* This attempt's failure, not an earlier one's, comes back with its
		   EXECUTE_COMPLETE. */
		switch_channel_set_variable(channel, "originate_failed_cause", NULL);
		switch_channel_set_variable(channel, "last_bridge_hangup_cause", NULL);
		/* The agent has answered: originate plays transfer_ringback, not ringback. */
		switch_channel_set_variable_var_check(channel, "transfer_ringback", ringback && *ringback ? ringback : NULL,
											  SWITCH_FALSE);
		if (at == AGENT_HELD) {
			/* Comes back as Application-UUID of the bridge's EXECUTE_COMPLETE. */
			switch_channel_set_variable(channel, "app_uuid", app_uuid);
			queued = run_held(session, "bridge", dial_string);
		} else {
			queued = queue_on_parked(session, "bridge", dial_string, app_uuid);
		}
		if (!queued) {
			switch_channel_set_variable(channel, "app_uuid", NULL);
			exports(channel, (switch_event_t *) vars, 0);
		}
	}
	switch_core_session_rwunlock(session);
	return queued;
}

void zc2c_dial_clear(const char *agent_uuid, zc2c_vars *vars)
{
	switch_core_session_t *session;
	switch_channel_t *channel;

	if (!agent_uuid || !vars || !(session = switch_core_session_locate(agent_uuid))) {
		return;
	}
	channel = switch_core_session_get_channel(session);
	exports(channel, (switch_event_t *) vars, 0);
	switch_channel_set_variable(channel, "continue_on_fail", NULL);
	switch_core_session_rwunlock(session);
}

/* The app playing to the agent while its call waits for a trunk. */
static int is_waiting_app(const char *app)
{
	return app && (!strcmp(app, "gentones") || !strcmp(app, "endless_playback"));
}

int zc2c_waiting_start(const char *agent_uuid, const char *app, const char *arg)
{
	switch_core_session_t *session;
	switch_channel_t *channel;
	int queued = 0;

	if (!agent_uuid || !is_waiting_app(app) || zstr(arg) || !(session = switch_core_session_locate(agent_uuid))) {
		return 0;
	}
	channel = switch_core_session_get_channel(session);
	switch (where(channel)) {
	case AGENT_HELD:
		/* Parked first, by our extension: the tone then runs in its `park`. */
		queued = run_held(session, NULL, NULL) && queue_on_parked(session, app, arg, NULL);
		break;
	case AGENT_PARKED:
		queued = queue_on_parked(session, app, arg, NULL);
		break;
	default:
		break;
	}
	if (queued) {
		switch_channel_set_variable(channel, "zorio_c2c_waiting", "true");
	}
	switch_core_session_rwunlock(session);
	return queued;
}

void zc2c_waiting_stop(const char *agent_uuid)
{
	switch_core_session_t *session;
	switch_channel_t *channel;

	if (!agent_uuid || !(session = switch_core_session_locate(agent_uuid))) {
		return;
	}
	channel = switch_core_session_get_channel(session);
	if (switch_true(switch_channel_get_variable(channel, "zorio_c2c_waiting"))) {
		/* Not started yet: dropped (nothing else of ours is queued on a
		   waiting agent). Playing: its loop ends at the break, which only an
		   app of ours sees (every app clears the flag when it starts). */
		switch_core_session_flush_private_events(session);
		if (is_waiting_app(switch_channel_get_variable(channel, SWITCH_CURRENT_APPLICATION_VARIABLE))) {
			switch_channel_set_flag(channel, CF_BREAK);
		}
		switch_channel_set_variable(channel, "zorio_c2c_waiting", NULL);
	}
	switch_core_session_rwunlock(session);
}
