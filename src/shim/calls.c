/* Originate, bridge, hang up: every variable travels in a switch_event_t. */
#include <switch.h>
#include "zorio_c2c_shim.h"

zc2c_vars *zc2c_vars_new(void)
{
	switch_event_t *e = NULL;
	if (switch_event_create_plain(&e, SWITCH_EVENT_CHANNEL_DATA) != SWITCH_STATUS_SUCCESS) {
		return NULL;
	}
	return (zc2c_vars *) e;
}

int zc2c_vars_add(zc2c_vars *vars, const char *name, const char *value)
{
	if (!vars || !name || !value) {
		return ZC2C_STATUS_FALSE;
	}
	/* "name[" would index an array and "ARRAY::" would split the value: refuse both. */
	if (strchr(name, '[') || !strncmp(value, "ARRAY::", 7)) {
		return ZC2C_STATUS_FALSE;
	}
	return switch_event_add_header_string((switch_event_t *) vars, SWITCH_STACK_BOTTOM, name, value);
}

void zc2c_vars_free(zc2c_vars *vars)
{
	switch_event_t *e = (switch_event_t *) vars;
	if (e) {
		switch_event_destroy(&e);
	}
}

_Static_assert(sizeof(switch_call_cause_t) == sizeof(int32_t), "switch_call_cause_t is 32 bits");

int32_t zc2c_cause_code(const char *name)
{
	switch_call_cause_t c = name ? switch_channel_str2cause(name) : SWITCH_CAUSE_NONE;
	return (int32_t) (c == SWITCH_CAUSE_NONE ? SWITCH_CAUSE_NORMAL_CLEARING : c);
}

/* The switch's own share of an answered originate (no person's): channel
 * created → the phone's first provisional answer (180, or 183), and marked
 * answered → now, whichever is longer. A phone that answered with no 180 or
 * 183 may have rung a person meanwhile: only the second counts then. */
static int64_t setup_delay(switch_channel_t *channel)
{
	switch_channel_timetable_t *tt = switch_channel_get_timetable(channel);
	switch_time_t now = switch_micro_time_now(), first = 0;
	int64_t to_first = 0, to_return = 0;

	if (!tt || tt->created <= 0 || tt->answered <= 0) {
		return -1;
	}
	if (tt->progress > 0) {
		first = tt->progress;
	}
	if (tt->progress_media > 0 && (!first || tt->progress_media < first)) {
		first = tt->progress_media;
	}
	if (first > tt->created) {
		to_first = (int64_t) (first - tt->created);
	}
	if (now > tt->answered) {
		to_return = (int64_t) (now - tt->answered);
	}
	return to_first > to_return ? to_first : to_return;
}

int zc2c_originate(const char *dial_string, uint32_t timeout_sec, const char *cid_name, const char *cid_num,
				   zc2c_vars *vars, int32_t *cancel, zc2c_originate_result *out)
{
	switch_core_session_t *session = NULL;
	switch_call_cause_t cause = SWITCH_CAUSE_NONE;
	switch_status_t status;

	if (!out) {
		return ZC2C_STATUS_FALSE;
	}
	out->answered = 0;
	out->setup_delay_us = -1;
	out->cause = switch_channel_cause2str(SWITCH_CAUSE_DESTINATION_OUT_OF_ORDER);
	if (!dial_string) {
		return ZC2C_STATUS_FALSE;
	}
	status = switch_ivr_originate(NULL, &session, &cause, dial_string, timeout_sec, NULL, cid_name, cid_num, NULL,
								  (switch_event_t *) vars, SOF_NONE, (switch_call_cause_t *) cancel, NULL);
	if (status == SWITCH_STATUS_SUCCESS && session) {
		switch_channel_t *channel = switch_core_session_get_channel(session);
		if (switch_channel_up(channel)) {
			/* Left where originate put it (CS_CONSUME_MEDIA, no dialplan) until
			   zc2c_dial_from or zc2c_waiting_start gives it its extension. */
			out->answered = 1;
			out->setup_delay_us = setup_delay(channel);
			cause = SWITCH_CAUSE_SUCCESS;
		} else {
			cause = switch_channel_get_cause(channel);
		}
		switch_core_session_rwunlock(session);
	}
	if (cause == SWITCH_CAUSE_NONE) {
		cause = SWITCH_CAUSE_DESTINATION_OUT_OF_ORDER;
	}
	out->cause = switch_channel_cause2str(cause);
	return out->answered ? ZC2C_STATUS_SUCCESS : ZC2C_STATUS_FALSE;
}

int zc2c_uuid_bridge(const char *a_uuid, const char *b_uuid)
{
	if (!a_uuid || !b_uuid) {
		return ZC2C_STATUS_FALSE;
	}
	return switch_ivr_uuid_bridge(a_uuid, b_uuid);
}

int zc2c_hangup(const char *uuid, const char *cause)
{
	switch_core_session_t *session;
	switch_call_cause_t c = cause ? switch_channel_str2cause(cause) : SWITCH_CAUSE_NORMAL_CLEARING;

	if (!uuid || !(session = switch_core_session_locate(uuid))) {
		return 0;
	}
	if (c == SWITCH_CAUSE_NONE) {
		c = SWITCH_CAUSE_NORMAL_CLEARING;
	}
	switch_channel_hangup(switch_core_session_get_channel(session), c);
	switch_core_session_rwunlock(session);
	return 1;
}

int zc2c_uuid_exists(const char *uuid)
{
	return uuid && switch_ivr_uuid_exists(uuid) ? 1 : 0;
}

int zc2c_presence_in_use(const char *presence_id)
{
	switch_console_callback_match_t *found;
	switch_console_callback_match_node_t *m;
	int n = 0;

	if (zstr(presence_id)) {
		return 0;
	}
	/* The session hash in memory (not the core db, which lags). */
	found = switch_core_session_findall_matching_var("presence_id", presence_id);
	if (found) {
		for (m = found->head; m; m = m->next) {
			n++;
		}
		switch_console_free_matches(&found);
	}
	return n;
}

char *zc2c_channels_by(const char *var)
{
	switch_console_callback_match_t *all;
	switch_console_callback_match_node_t *m;
	switch_stream_handle_t out = { 0 };
	int any = 0;

	if (zstr(var) || !(all = switch_core_session_findall())) {
		return NULL;
	}
	SWITCH_STANDARD_STREAM(out);
	for (m = all->head; m; m = m->next) {
		switch_core_session_t *session = switch_core_session_locate(m->val);
		switch_channel_t *channel;
		const char *value;

		if (!session) {
			continue;
		}
		channel = switch_core_session_get_channel(session);
		/* A value with a tab or a newline would break its line: no trunk has one. */
		if (switch_channel_up_nosig(channel) && (value = switch_channel_get_variable_dup(channel, var, SWITCH_FALSE, -1)) &&
			!strpbrk(value, "\t\n")) {
			out.write_function(&out, "%s\t%s\n", m->val, value);
			any = 1;
		}
		switch_core_session_rwunlock(session);
	}
	switch_console_free_matches(&all);
	if (!any) {
		switch_safe_free(out.data);
		return NULL;
	}
	return (char *) out.data;
}

int zc2c_core_ready(void)
{
	return switch_core_ready() ? 1 : 0;
}

uint32_t zc2c_max_sessions(void)
{
	/* 0 asks for the limit without changing it. */
	return switch_core_session_limit(0);
}

uint32_t zc2c_sessions_in_use(void)
{
	return switch_core_session_count();
}

char *zc2c_channel_var(const char *uuid, const char *name)
{
	switch_core_session_t *session;
	const char *v;
	char *copy = NULL;

	if (!uuid || !name || !(session = switch_core_session_locate(uuid))) {
		return NULL;
	}
	if ((v = switch_channel_get_variable(switch_core_session_get_channel(session), name))) {
		copy = strdup(v);
	}
	switch_core_session_rwunlock(session);
	return copy;
}

int zc2c_channel_tag(const char *uuid, const char *name, const char *value)
{
	switch_core_session_t *session;
	switch_channel_t *channel;
	int done = 0;

	if (!uuid || !name || !value || !(session = switch_core_session_locate(uuid))) {
		return 0;
	}
	channel = switch_core_session_get_channel(session);
	/* Up now: its HANGUP_COMPLETE, made later, will carry the variable. */
	if (switch_channel_up_nosig(channel)) {
		switch_channel_set_variable(channel, name, value);
		done = 1;
	}
	switch_core_session_rwunlock(session);
	return done;
}

char *zc2c_api_execute(const char *cmd, const char *arg)
{
	switch_stream_handle_t stream = {0};

	if (!cmd) {
		return NULL;
	}
	SWITCH_STANDARD_STREAM(stream);
	if (switch_api_execute(cmd, arg, NULL, &stream) != SWITCH_STATUS_SUCCESS) {
		switch_safe_free(stream.data);
		return NULL;
	}
	/* The standard stream's buffer is malloc'd: the caller frees it. */
	return (char *) stream.data;
}
