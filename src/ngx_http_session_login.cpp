// ngx_http_session_module: login and logout endpoints.

#include "ngx_http_session.h"

namespace ngx_session {

char* login_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" is not implemented yet", &cmd->name);
  return static_cast<char*>(NGX_CONF_ERROR);
}

char* logout_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
  ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" is not implemented yet", &cmd->name);
  return static_cast<char*>(NGX_CONF_ERROR);
}

}  // namespace ngx_session
