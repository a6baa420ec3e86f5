/* LD_PRELOAD probe for t/test_login_thread_exit.py: reports (on stderr, which is nginx's error
 * log in a worker) every run of OpenSSL's per-thread key destructor in a thread other than the
 * process's main thread, i.e. a thread that still had OpenSSL state to free when it ended.
 *
 * nginx ends the threads of its thread pools only as a worker exits, and its main thread goes on
 * to exit(0) without waiting for them: OpenSSL's atexit handler (OPENSSL_cleanup) then frees
 * what such a destructor is freeing at the same moment (a double free, a worker dying of SIGSEGV
 * or SIGABRT while shutting down). The probe needs no race to see it: it only watches for the
 * destructor, and holds the main thread back in exit() for a moment so that pool threads always
 * get to theirs.
 *
 * libcrypto registers the destructor with CRYPTO_THREAD_init_local (the only key it makes with
 * one: the thread-stop handlers); the probe wraps it there. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void (*destructor_fn)(void *);
static destructor_fn openssl_destructor;

static void say(const char *msg) {
  ssize_t rc = write(2, msg, strlen(msg));
  (void)rc;
}

static void wrapped_destructor(void *value) {
  if (gettid() != getpid()) {
    say("openssl-thread-exit-probe: a thread ended with OpenSSL thread state to free\n");
  }
  openssl_destructor(value);
}

int CRYPTO_THREAD_init_local(void *key, destructor_fn cleanup) {
  static int (*real)(void *, destructor_fn);
  if (real == NULL) {
    real = (int (*)(void *, destructor_fn))dlsym(RTLD_NEXT, "CRYPTO_THREAD_init_local");
  }
  if (cleanup != NULL && openssl_destructor == NULL) {
    openssl_destructor = cleanup;
    say("openssl-thread-exit-probe: watching OpenSSL's thread key destructor\n");
    return real(key, wrapped_destructor);
  }
  return real(key, cleanup);
}

void exit(int status) {
  static void (*real)(int);
  if (real == NULL) real = (void (*)(int))dlsym(RTLD_NEXT, "exit");
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);  /* the threads a worker just ended finish ending */
  real(status);
  __builtin_unreachable();
}
