/* The customer's leg dialled from the agent's own session thread.
 *
 * Rust asks for one attempt at a time (zc2c_dial_start): the attempt becomes
 * a job, and the application `zorio_c2c_dial <job id>` is queued on the
 * agent's (answered, parked) session, which runs it on its own thread. There
 * switch_ivr_originate() has the agent's session as its caller, so FreeSWITCH
 * does what its own &bridge does: the carrier's early media is relayed to the
 * agent (bridge_early_media), else `transfer_ringback` is played. The
 * answered customer's leg is parked for Rust's uuid_bridge, as before.
 * Rust polls the job (zc2c_dial_poll) and frees it once it is done or the
 * agent's channel is gone (then the application can no longer run). */
#include <switch.h>
#include <pthread.h>
#include "zorio_c2c_shim.h"

#define APP_NAME "zorio_c2c_dial"

struct zc2c_dial_job {
	uint32_t id;
	int started;
	int done;
	int answered;
	const char *cause;
	char *dial_string;
	char *cid_name;
	char *cid_num;
	char *ringback;
	uint32_t timeout;
	switch_event_t *vars;
	int32_t *cancel;
	struct zc2c_dial_job *next;
};

/* Jobs not yet freed; the application only runs a job it finds here. */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static zc2c_dial_job *jobs = NULL;
static uint32_t last_id = 0;

static zc2c_dial_job *claim(uint32_t id)
{
	zc2c_dial_job *j;
	pthread_mutex_lock(&jobs_lock);
	for (j = jobs; j && j->id != id; j = j->next) {
	}
	if (j && j->started) {
		j = NULL;
	} else if (j) {
		j->started = 1;
	}
	pthread_mutex_unlock(&jobs_lock);
	return j;
}

static void finish(zc2c_dial_job *job, int answered, switch_call_cause_t cause)
{
	pthread_mutex_lock(&jobs_lock);
	job->answered = answered;
	job->cause = switch_channel_cause2str(cause);
	job->done = 1;
	pthread_mutex_unlock(&jobs_lock);
	/* Rust may free the job from here on: never touch it again. */
}

SWITCH_STANDARD_APP(dial_app)
{
	switch_channel_t *channel = switch_core_session_get_channel(session);
	switch_core_session_t *peer = NULL;
	switch_call_cause_t cause = SWITCH_CAUSE_NONE;
	zc2c_dial_job *job = data ? claim((uint32_t) strtoul(data, NULL, 10)) : NULL;
	int answered = 0;

	if (!job) {
		switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_ERROR, "%s: no such dial job\n", APP_NAME);
		return;
	}
	if (job->ringback && *job->ringback) {
		/* The agent has answered: originate plays transfer_ringback to it. */
		switch_channel_set_variable(channel, "transfer_ringback", job->ringback);
	}
	if (switch_ivr_originate(session, &peer, &cause, job->dial_string, job->timeout, NULL, job->cid_name, job->cid_num, NULL,
							 job->vars, SOF_NONE, (switch_call_cause_t *) job->cancel, NULL) == SWITCH_STATUS_SUCCESS && peer) {
		switch_channel_t *peer_channel = switch_core_session_get_channel(peer);
		if (switch_channel_up(peer_channel)) {
			/* Keep it waiting, no dialplan, until Rust bridges it. */
			switch_ivr_park_session(peer);
			answered = 1;
			cause = SWITCH_CAUSE_SUCCESS;
		} else {
			cause = switch_channel_get_cause(peer_channel);
		}
		switch_core_session_rwunlock(peer);
	}
	if (cause == SWITCH_CAUSE_NONE) {
		cause = SWITCH_CAUSE_DESTINATION_OUT_OF_ORDER;
	}
	finish(job, answered, cause);
}

int zc2c_add_dial_app(zc2c_module_interface *module)
{
	switch_application_interface_t *app;

	if (!module) {
		return ZC2C_STATUS_FALSE;
	}
	app = (switch_application_interface_t *) switch_loadable_module_create_interface((switch_loadable_module_interface_t *) module,
																					 SWITCH_APPLICATION_INTERFACE);
	if (!app) {
		return ZC2C_STATUS_FALSE;
	}
	app->interface_name = APP_NAME;
	app->application_function = dial_app;
	app->short_desc = "mod_zorio_c2c: dial a customer from the agent's session (internal)";
	app->long_desc = app->short_desc;
	app->syntax = "<job id>";
	app->flags = SAF_NONE;
	return ZC2C_STATUS_SUCCESS;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

zc2c_dial_job *zc2c_dial_start(const char *agent_uuid, const char *dial_string, uint32_t timeout_sec, const char *cid_name,
							   const char *cid_num, const char *ringback, zc2c_vars *vars, int32_t *cancel)
{
	switch_core_session_t *session;
	zc2c_dial_job *job;
	char arg[16];

	if (!agent_uuid || !dial_string || !vars || !(job = calloc(1, sizeof(*job)))) {
		return NULL;
	}
	job->dial_string = dup_or_null(dial_string);
	job->cid_name = dup_or_null(cid_name);
	job->cid_num = dup_or_null(cid_num);
	job->ringback = dup_or_null(ringback);
	job->timeout = timeout_sec;
	job->cancel = cancel;
	if (switch_event_dup(&job->vars, (switch_event_t *) vars) != SWITCH_STATUS_SUCCESS) {
		job->vars = NULL;
	}
	pthread_mutex_lock(&jobs_lock);
	if (++last_id == 0) {
		++last_id;
	}
	job->id = last_id;
	job->next = jobs;
	jobs = job;
	pthread_mutex_unlock(&jobs_lock);
	switch_snprintf(arg, sizeof(arg), "%u", job->id);
	if (!job->vars || !job->dial_string || !(session = switch_core_session_locate(agent_uuid))) {
		zc2c_dial_job_free(job);
		return NULL;
	}
	if (switch_core_session_execute_application_async(session, APP_NAME, arg) != SWITCH_STATUS_SUCCESS) {
		switch_core_session_rwunlock(session);
		zc2c_dial_job_free(job);
		return NULL;
	}
	switch_core_session_rwunlock(session);
	return job;
}

int zc2c_dial_poll(zc2c_dial_job *job, zc2c_originate_result *out)
{
	int done;

	if (!job || !out) {
		return 0;
	}
	pthread_mutex_lock(&jobs_lock);
	done = job->done;
	if (done) {
		out->answered = job->answered;
		out->cause = job->cause;
	}
	pthread_mutex_unlock(&jobs_lock);
	return done;
}


void zc2c_dial_job_free(zc2c_dial_job *job)
{
	zc2c_dial_job **p;

	if (!job) {
		return;
	}
	pthread_mutex_lock(&jobs_lock);
	for (p = &jobs; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	pthread_mutex_unlock(&jobs_lock);
	if (job->vars) {
		switch_event_destroy(&job->vars);
	}
	switch_safe_free(job->dial_string);
	switch_safe_free(job->cid_name);
	switch_safe_free(job->cid_num);
	switch_safe_free(job->ringback);
	free(job);
}
