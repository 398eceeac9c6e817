/* Configuration and directory look-ups. */
#include <switch.h>
#include "zorio_c2c_shim.h"

char *zc2c_config_xml(const char *cf)
{
	switch_xml_t xml, cfg = NULL;
	char *text = NULL;

	if (!cf || !(xml = switch_xml_open_cfg(cf, &cfg, NULL))) {
		return NULL;
	}
	if (cfg) {
		text = switch_xml_toxml(cfg, SWITCH_FALSE);
	}
	switch_xml_free(xml);
	return text;
}

char *zc2c_global_var(const char *name)
{
	return name ? switch_core_get_variable_dup(name) : NULL;
}

int zc2c_file_format_writable(const char *ext)
{
	switch_file_interface_t *fi;
	int writable;

	if (!ext || !(fi = switch_loadable_module_get_file_interface(ext, NULL))) {
		return 0;
	}
	writable = fi->file_write != NULL;
	UNPROTECT_INTERFACE(fi);
	return writable;
}

/* A user's variable, else param, named `name` (after the merge of domain and group). */
static const char *user_value(switch_xml_t x_user, const char *name)
{
	switch_xml_t x_list, x_item;
	if ((x_list = switch_xml_child(x_user, "variables"))) {
		for (x_item = switch_xml_child(x_list, "variable"); x_item; x_item = x_item->next) {
			if (!strcasecmp(switch_xml_attr_soft(x_item, "name"), name)) {
				return switch_xml_attr(x_item, "value");
			}
		}
	}
	if ((x_list = switch_xml_child(x_user, "params"))) {
		for (x_item = switch_xml_child(x_list, "param"); x_item; x_item = x_item->next) {
			if (!strcasecmp(switch_xml_attr_soft(x_item, "name"), name)) {
				return switch_xml_attr(x_item, "value");
			}
		}
	}
	return NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int zc2c_user_lookup(const char *id, const char *domain, zc2c_user *out)
{
	switch_xml_t x_user = NULL;

	if (!id || !domain || !out) {
		return 0;
	}
	memset(out, 0, sizeof(*out));
	if (switch_xml_locate_user_merged("id", id, domain, NULL, &x_user, NULL) != SWITCH_STATUS_SUCCESS || !x_user) {
		return 0;
	}
	out->status = dup_or_null(user_value(x_user, "zorio_c2c_status"));
	out->outbound_caller_id_number = dup_or_null(user_value(x_user, "outbound_caller_id_number"));
	out->outbound_caller_id_name = dup_or_null(user_value(x_user, "outbound_caller_id_name"));
	switch_xml_free(x_user);
	return 1;
}

void zc2c_user_clear(zc2c_user *user)
{
	if (user) {
		free(user->status);
		free(user->outbound_caller_id_number);
		free(user->outbound_caller_id_name);
		memset(user, 0, sizeof(*user));
	}
}
