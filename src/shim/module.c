/*
 * Module table checks, module/API interfaces, API streams, logging, memory.
 * Everything FreeSWITCH-typed stays in this directory.
 */
#include <switch.h>
#include <stddef.h>
#include "zorio_c2c_shim.h"

/* What we mirror in zorio_c2c_shim.h must match the headers we build against. */
#ifndef ZC2C_API_VERSION
#error "build.rs passes -DZC2C_API_VERSION from the headers it found"
#endif
_Static_assert(ZC2C_API_VERSION == SWITCH_API_VERSION, "SWITCH_API_VERSION differs from build.rs's");
_Static_assert(sizeof(zc2c_module_table) == sizeof(switch_loadable_module_function_table_t), "module table size");
_Static_assert(offsetof(zc2c_module_table, switch_api_version) == offsetof(switch_loadable_module_function_table_t, switch_api_version), "api_version offset");
_Static_assert(offsetof(zc2c_module_table, load) == offsetof(switch_loadable_module_function_table_t, load), "load offset");
_Static_assert(offsetof(zc2c_module_table, shutdown) == offsetof(switch_loadable_module_function_table_t, shutdown), "shutdown offset");
_Static_assert(offsetof(zc2c_module_table, runtime) == offsetof(switch_loadable_module_function_table_t, runtime), "runtime offset");
_Static_assert(offsetof(zc2c_module_table, flags) == offsetof(switch_loadable_module_function_table_t, flags), "flags offset");
_Static_assert(sizeof(switch_status_t) == sizeof(int), "switch_status_t is an int");
_Static_assert((int) ZC2C_STATUS_SUCCESS == (int) SWITCH_STATUS_SUCCESS, "status");
_Static_assert((int) ZC2C_STATUS_FALSE == (int) SWITCH_STATUS_FALSE, "status");
_Static_assert((int) ZC2C_STATUS_GENERR == (int) SWITCH_STATUS_GENERR, "status");
_Static_assert((int) ZC2C_STATUS_NOUNLOAD == (int) SWITCH_STATUS_NOUNLOAD, "status");
_Static_assert((int) ZC2C_STATUS_TERM == (int) SWITCH_STATUS_TERM, "status");

zc2c_module_interface *zc2c_module_create(zc2c_module_interface **out, zc2c_pool *pool, const char *name)
{
	switch_loadable_module_interface_t **mi = (switch_loadable_module_interface_t **) out;
	*mi = switch_loadable_module_create_module_interface((switch_memory_pool_t *) pool, name);
	return (zc2c_module_interface *) *mi;
}

/* FreeSWITCH API callbacks carry no user data: one trampoline per slot. */
#define ZC2C_API_SLOTS 4
static zc2c_api_fn api_slots[ZC2C_API_SLOTS];

#define ZC2C_TRAMPOLINE(n) \
	static switch_status_t api_trampoline_##n(const char *cmd, switch_core_session_t *session, switch_stream_handle_t *stream) \
	{ \
		(void) session; \
		return (switch_status_t) api_slots[n](cmd, (zc2c_stream *) stream); \
	}
ZC2C_TRAMPOLINE(0)
ZC2C_TRAMPOLINE(1)
ZC2C_TRAMPOLINE(2)
ZC2C_TRAMPOLINE(3)
static switch_api_function_t api_trampolines[ZC2C_API_SLOTS] = {
	api_trampoline_0, api_trampoline_1, api_trampoline_2, api_trampoline_3
};

int zc2c_add_api(zc2c_module_interface *module, const char *name, const char *desc, const char *syntax, zc2c_api_fn fn)
{
	int i;
	switch_api_interface_t *api;

	for (i = 0; i < ZC2C_API_SLOTS; i++) {
		if (api_slots[i] == NULL || api_slots[i] == fn) {
			break;
		}
	}
	if (i == ZC2C_API_SLOTS || !module || !fn) {
		return ZC2C_STATUS_FALSE;
	}
	api_slots[i] = fn;
	api = (switch_api_interface_t *) switch_loadable_module_create_interface((switch_loadable_module_interface_t *) module,
																			 SWITCH_API_INTERFACE);
	if (!api) {
		return ZC2C_STATUS_FALSE;
	}
	api->interface_name = name;
	api->desc = desc;
	api->function = api_trampolines[i];
	api->syntax = syntax;
	return ZC2C_STATUS_SUCCESS;
}

void zc2c_stream_write(zc2c_stream *stream, const char *text)
{
	switch_stream_handle_t *s = (switch_stream_handle_t *) stream;
	if (s && s->write_function && text) {
		s->write_function(s, "%s", text);
	}
}

const char *zc2c_stream_param(zc2c_stream *stream, const char *name)
{
	switch_stream_handle_t *s = (switch_stream_handle_t *) stream;
	if (!s || !s->param_event || !name) {
		return NULL;
	}
	return switch_event_get_header(s->param_event, name);
}

void zc2c_log(int level, const char *uuid, const char *file, const char *func, int line, const char *text)
{
	switch_log_level_t l;
	switch (level) {
	case ZC2C_LOG_DEBUG: l = SWITCH_LOG_DEBUG; break;
	case ZC2C_LOG_INFO: l = SWITCH_LOG_INFO; break;
	case ZC2C_LOG_NOTICE: l = SWITCH_LOG_NOTICE; break;
	case ZC2C_LOG_WARNING: l = SWITCH_LOG_WARNING; break;
	case ZC2C_LOG_ERROR: l = SWITCH_LOG_ERROR; break;
	default: l = SWITCH_LOG_CRIT; break;
	}
	/* SWITCH_CHANNEL_UUID_LOG(uuid) with our own file/func/line. */
	switch_log_printf(SWITCH_CHANNEL_ID_LOG, file ? file : "mod_zorio_c2c", func ? func : "", line, uuid, l, "%s\n",
					  text ? text : "");
}

void zc2c_free(void *p)
{
	free(p);
}
