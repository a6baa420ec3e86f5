// ngx_http_session_module: session_login_user_file - the user table and the password check in a
// thread pool.
//
// The file is parsed into a core UserTable (a hash index: where a user sits in the file does not
// change the time) when nginx reads its configuration, and again by the first check after the
// file changed (size, mtime or inode), so that users can be added without a reload. The check
// runs in the thread pool named by session_login_thread_pool: bcrypt is slow on purpose and the
// event loop must not wait for it. Unknown users are checked against a decoy hash of the file
// (core/users.h), so they cost what known users cost.

#include "ngx_http_session.h"

#include <memory>
#include <mutex>
#include <string>

#include "core/crypto.h"
#include "core/users.h"

extern "C" {
#include <sys/stat.h>
}

namespace ngx_session {

struct user_file_t {
  std::string path;                               // full path
  std::mutex mu;                                  // guards the fields below (pool threads)
  std::shared_ptr<const sess::UserTable> table;
  dev_t dev = 0;
  ino_t ino = 0;
  time_t mtime = 0;
  off_t size = -1;
  unsigned char decoy_key[32];
};

namespace {

constexpr size_t kMaxUserFile = 64u << 20;

// Reads the file and builds its table if it changed since the last look. Returns the table (or
// nullptr with *err set if the file cannot be read). Runs in pool threads and at config time.
std::shared_ptr<const sess::UserTable> current_table(user_file_t* uf, int* err) {
  std::lock_guard<std::mutex> lock(uf->mu);
  struct stat st;
  if (stat(uf->path.c_str(), &st) != 0) {
    *err = errno;
    return nullptr;
  }
  if (uf->table && st.st_dev == uf->dev && st.st_ino == uf->ino && st.st_mtime == uf->mtime &&
      st.st_size == uf->size) {
    return uf->table;
  }
  FILE* f = std::fopen(uf->path.c_str(), "rb");
  if (f == nullptr) {
    *err = errno;
    return nullptr;
  }
  std::string text;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0 && text.size() < kMaxUserFile) {
    text.append(buf, n);
  }
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    *err = EIO;
    return nullptr;
  }
  auto table = std::make_shared<sess::UserTable>();
  table->load(text);
  uf->table = table;
  uf->dev = st.st_dev;
  uf->ino = st.st_ino;
  uf->mtime = st.st_mtime;
  uf->size = st.st_size;
  return uf->table;
}

void user_file_free(void* data) noexcept { delete static_cast<user_file_t*>(data); }

#if (NGX_THREADS)

struct users_task_t {
  ngx_http_request_t* r;
  user_file_t* uf;
  ngx_str_t user;
  ngx_str_t password;
  void (*done)(ngx_http_request_t*, int);
  int result;  // 1 match, 0 no match, -1 the file could not be read
  int err;
};

// Runs in a thread of the pool: no nginx pools or logs here.
void users_check_thread(void* data, ngx_log_t*) {
  auto* t = static_cast<users_task_t*>(data);
  t->result = -1;
  try {
    std::shared_ptr<const sess::UserTable> table = current_table(t->uf, &t->err);
    if (!table) return;
    sess::CheckResult res = sess::users_check(*table, sv(t->user), sv(t->password),
                                              t->uf->decoy_key);
    t->result = res == sess::CheckResult::Match ? 1 : 0;
  } catch (...) {
    t->result = -1;
  }
  sess::release_thread_crypto_state();  // (nginx does not join its pool's threads: core/crypto.h)
}

void users_check_event(ngx_event_t* ev) noexcept {
  auto* t = static_cast<users_task_t*>(ev->data);
  ngx_http_request_t* r = t->r;
  ngx_connection_t* c = r->connection;
  r->main->blocked--;
  r->aio = 0;
  if (t->result < 0) {
    ngx_log_error(NGX_LOG_ERR, c->log, t->err, "session_login_user_file \"%s\" cannot be read",
                  t->uf->path.c_str());
  }
  guard_void(c->log, [&]() { t->done(r, t->result); });
  ngx_http_run_posted_requests(c);
}

#endif

}  // namespace

user_file_t* users_open(ngx_conf_t* cf, const ngx_str_t& name) {
  return guard<user_file_t*>(cf->log, nullptr, [&]() -> user_file_t* {
    ngx_str_t path = name;
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) return nullptr;
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr) return nullptr;
    auto* uf = new user_file_t();
    cln->handler = user_file_free;
    cln->data = uf;
    uf->path.assign(reinterpret_cast<const char*>(path.data), path.len);
    if (!sess::random_bytes(uf->decoy_key, sizeof(uf->decoy_key))) return nullptr;
    int err = 0;
    std::shared_ptr<const sess::UserTable> table = current_table(uf, &err);
    if (!table) {
      ngx_conf_log_error(NGX_LOG_EMERG, cf, err, "\"session_login_user_file\" \"%V\" cannot be read",
                         &path);
      return nullptr;
    }
    if (table->cost_classes() > 1) {
      ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                         "\"session_login_user_file\" \"%V\" mixes %uz hash formats or costs: "
                         "the time a login takes tells which one a user has (use one format, "
                         "e.g. bcrypt with one cost, for every user)",
                         &path, table->cost_classes());
    }
    return uf;
  });
}

ngx_int_t users_check_async(ngx_http_request_t* r, loc_conf_t* lcf, ngx_str_t user,
                            ngx_str_t password, void (*done)(ngx_http_request_t*, int)) {
#if (NGX_THREADS)
  ngx_thread_task_t* task = ngx_thread_task_alloc(r->pool, sizeof(users_task_t));
  if (task == nullptr) return NGX_ERROR;
  auto* t = static_cast<users_task_t*>(task->ctx);
  t->r = r;
  t->uf = lcf->users;
  t->user = user;
  t->password = password;
  t->done = done;
  task->handler = users_check_thread;
  task->event.data = t;
  task->event.handler = users_check_event;
  if (ngx_thread_task_post(lcf->login_pool, task) != NGX_OK) {
    return NGX_DECLINED;  // the queue is full (logged by nginx)
  }
  r->main->blocked++;
  r->aio = 1;
  return NGX_AGAIN;
#else
  return NGX_ERROR;
#endif
}

}  // namespace ngx_session
