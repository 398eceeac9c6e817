/* The customer's leg, dialled from the agent's own session by mod_dptools'
 * `bridge` (what FreeSWITCH's own `&bridge(...)` runs): queued on the
 * answered, parked agent, it runs switch_ivr_originate() with the agent as
 * caller, on the agent's session thread, so the carrier's early media (183
 * with SDP, bridge_early_media) is relayed to the agent, else
 * `transfer_ringback` is played; once the customer answers, it bridges them.
 * Nothing of ours runs on that thread: only FreeSWITCH's own application.
 *
 * The attempt's variables (caller id, X- headers, tags) reach the new leg
 * without ever being parsed out of a dial string: each is set on the agent
 * as `_nolocal_<name>` and listed in its `export_vars`, which originate
 * copies verbatim, name stripped of the prefix, into the new leg's variables. */
#include <switch.h>
#include "zorio_c2c_shim.h"

#define EXPORT_PREFIX "_nolocal_"

/* Sets (or, with set = 0, clears) the exports of `vars` on `channel`. */
static void exports(switch_channel_t *channel, switch_event_t *vars, int set)
{
	switch_event_header_t *hp;
	switch_stream_handle_t list = { 0 };
	int first = 1;

	SWITCH_STANDARD_STREAM(list);
	for (hp = vars ? vars->headers : NULL; hp; hp = hp->next) {
		char *name = switch_mprintf(EXPORT_PREFIX "%s", hp->name);
		if (!name) {
			continue;
		}
		/* No variable check: a value is text, never expanded here. */
		switch_channel_set_variable_var_check(channel, name, set ? hp->value : NULL, SWITCH_FALSE);
		list.write_function(&list, "%s%s", first ? "" : ",", name);
		first = 0;
		free(name);
	}
	switch_channel_set_variable(channel, SWITCH_EXPORT_VARS_VARIABLE, set && !first ? (char *) list.data : NULL);
	switch_safe_free(list.data);
}

int zc2c_dial_from(const char *agent_uuid, const char *dial_string, zc2c_vars *vars, const char *ringback,
				   const char *app_uuid)
{
	switch_core_session_t *session;
	switch_channel_t *channel;
	switch_event_t *cmd = NULL;
	int queued = 0;

	if (!agent_uuid || !dial_string || !vars || !app_uuid || !(session = switch_core_session_locate(agent_uuid))) {
		return 0;
	}
	channel = switch_core_session_get_channel(session);
	/* Just answered, the agent is still on its way into CS_PARK (CF_TRANSFER,
	   a state change pending): an originate started now would find its caller
	   not ready and give up at once (ORIGINATOR_CANCEL). Come back later. */
	if (switch_channel_up_nosig(channel) &&
		(!switch_channel_ready(channel) || switch_channel_get_running_state(channel) != CS_PARK)) {
		switch_core_session_rwunlock(session);
		return -1;
	}
	if (switch_channel_up_nosig(channel) && switch_event_create(&cmd, SWITCH_EVENT_COMMAND) == SWITCH_STATUS_SUCCESS) {
		exports(channel, (switch_event_t *) vars, 1);
		/* A failed attempt leaves the agent up, for the next trunk. */
		switch_channel_set_variable(channel, "continue_on_fail", "true");
		/* The agent has answered: originate plays transfer_ringback, not ringback. */
		switch_channel_set_variable_var_check(channel, "transfer_ringback", ringback && *ringback ? ringback : NULL,
											  SWITCH_FALSE);
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "call-command", "execute");
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "execute-app-name", "bridge");
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "execute-app-arg", dial_string);
		/* Comes back as Application-UUID of the agent's CHANNEL_EXECUTE_COMPLETE. */
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "event-uuid", app_uuid);
		if (switch_core_session_queue_private_event(session, &cmd, SWITCH_FALSE) == SWITCH_STATUS_SUCCESS) {
			queued = 1;
		} else {
			switch_event_destroy(&cmd);
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
	switch_event_t *cmd = NULL;
	int queued = 0;

	if (!agent_uuid || !is_waiting_app(app) || zstr(arg) || !(session = switch_core_session_locate(agent_uuid))) {
		return 0;
	}
	channel = switch_core_session_get_channel(session);
	if (switch_channel_ready(channel) && switch_channel_get_running_state(channel) == CS_PARK &&
		switch_event_create(&cmd, SWITCH_EVENT_COMMAND) == SWITCH_STATUS_SUCCESS) {
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "call-command", "execute");
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "execute-app-name", app);
		switch_event_add_header_string(cmd, SWITCH_STACK_BOTTOM, "execute-app-arg", arg);
		if (switch_core_session_queue_private_event(session, &cmd, SWITCH_FALSE) == SWITCH_STATUS_SUCCESS) {
			switch_channel_set_variable(channel, "zorio_c2c_waiting", "true");
			queued = 1;
		} else {
			switch_event_destroy(&cmd);
		}
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
