// Unit tests for gate.h: the phase-handler layout nginx builds, the stage of a handler index, and
// which responses may carry actions and session writes.
#include "gate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using sess::Phase;
using sess::PhaseLayout;
using sess::Stage;

namespace {

// The handler array of ngx_http_init_phase_handlers() (nginx 1.22.1, src/http/ngx_http.c),
// written out independently: for every handler index, the phase it belongs to.
//   - every phase before the log phase contributes its registered handlers, in order;
//   - find-config is always exactly one handler (handlers registered for it are ignored);
//   - post-rewrite is one handler only when the rewrite phase has handlers, post-access only
//     when the access phase has handlers (handlers registered for either are ignored).
// nginx also keeps a counter `n` for the `next` fields; it is one ahead of the array position
// after an access phase without handlers (its `n++` is unconditional). r->phase_handler is the
// array position, which is what this list gives.
std::vector<Phase> nginx_handlers(const size_t* counts) {
  std::vector<Phase> h;
  for (size_t i = 0; i < sess::kPhaseCount; i++) {
    const auto p = static_cast<Phase>(i);
    switch (p) {
      case sess::kFindConfig:
        h.push_back(p);
        continue;
      case sess::kPostRewrite:
        if (counts[sess::kRewrite] != 0) h.push_back(p);
        continue;
      case sess::kPostAccess:
        if (counts[sess::kAccess] != 0) h.push_back(p);
        continue;
      default:
        h.insert(h.end(), counts[i], p);
    }
  }
  return h;
}

Stage stage_of_phase(Phase p) {
  switch (p) {
    case sess::kPostRead:
    case sess::kFindConfig:
      return Stage::BeforeLocation;
    case sess::kServerRewrite:
      return Stage::ServerRewrite;
    case sess::kRewrite:
    case sess::kPostRewrite:
      return Stage::Rewrite;
    case sess::kPreaccess:
    case sess::kAccess:
    case sess::kPostAccess:
      return Stage::Access;
    default:
      return Stage::Passed;
  }
}

// Index of the first handler of phase p in h, or where it would be (the next phase's first).
size_t first_of(const std::vector<Phase>& h, Phase p) {
  for (size_t i = 0; i < h.size(); i++) {
    if (h[i] >= p) return i;
  }
  return h.size();
}

const char* name(Stage s) {
  switch (s) {
    case Stage::BeforeLocation: return "BeforeLocation";
    case Stage::ServerRewrite: return "ServerRewrite";
    case Stage::Rewrite: return "Rewrite";
    case Stage::Access: return "Access";
    case Stage::Passed: return "Passed";
  }
  return "?";
}

char letter(Stage s) { return name(s)[0]; }

std::string describe(const size_t* counts) {
  std::string s = "counts";
  for (size_t i = 0; i < sess::kPhaseCount; i++) s += " " + std::to_string(counts[i]);
  return s;
}

// Checks phase_layout and stage_of for every handler index against the reference array.
void check_layout(const size_t* counts) {
  SCOPED_TRACE(describe(counts));
  const std::vector<Phase> h = nginx_handlers(counts);
  const PhaseLayout l = sess::phase_layout(counts);
  EXPECT_EQ(l.server_rewrite, first_of(h, sess::kServerRewrite));
  EXPECT_EQ(l.find_config, first_of(h, sess::kFindConfig));
  EXPECT_EQ(l.rewrite, first_of(h, sess::kRewrite));
  EXPECT_EQ(l.preaccess, first_of(h, sess::kPreaccess));
  EXPECT_EQ(l.precontent, first_of(h, sess::kPrecontent));
  for (size_t i = 0; i < h.size(); i++) {
    EXPECT_STREQ(name(sess::stage_of(l, i)), name(stage_of_phase(h[i]))) << "handler " << i;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// phase_layout

// Layouts written out by hand from ngx_http_init_phase_handlers(). Stages per handler index:
// B = BeforeLocation, S = ServerRewrite, R = Rewrite, A = Access, P = Passed.
TEST(PhaseLayout, WrittenOut) {
  const struct {
    const char* what;
    size_t counts[sess::kPhaseCount];  // post-read, server rewrite, find config, rewrite,
                                       // post-rewrite, pre-access, access, post-access,
                                       // pre-content, content
    size_t server_rewrite, find_config, rewrite, preaccess, precontent;
    const char* stages;
  } rows[] = {
      // 0-1 server rewrite | 2 find config | 3-4 rewrite | 5 post-rewrite | 6-7 pre-access |
      // 8-10 access | 11 post-access | 12-13 pre-content | 14-16 content
      {"a typical build", {0, 2, 0, 2, 0, 2, 3, 0, 2, 3}, 0, 2, 3, 6, 12, "SSBRRRAAAAAAPPPPP"},
      // 0 find config, nothing else: no post-rewrite, no post-access.
      {"no handlers at all", {}, 0, 0, 1, 1, 1, "B"},
      // 0 post-read | 1 find config | 2 pre-access | 3 access | 4 post-access | 5 content
      {"empty rewrite phase: no post-rewrite", {1, 0, 0, 0, 0, 1, 1, 0, 0, 1}, 1, 1, 2, 2, 5,
       "BBAAAP"},
      // 0 find config | 1 rewrite | 2 post-rewrite | 3-4 pre-access | 5 pre-content. nginx's
      // `next` counter runs one ahead after an access phase without handlers; the array not.
      {"empty access phase: no post-access", {0, 0, 0, 1, 0, 2, 0, 0, 1, 0}, 0, 0, 1, 3, 5,
       "BRRAAP"},
      // 0-1 post-read | 2 find config | 3 pre-access | 4 access | 5 post-access | 6 content
      {"empty server rewrite and rewrite phases", {2, 0, 0, 0, 0, 1, 1, 0, 0, 1}, 2, 2, 3, 3, 6,
       "BBBAAAP"},
      // nginx skips handlers pushed onto find-config, post-rewrite and post-access:
      // 0 post-read | 1 server rewrite | 2 find config | 3 rewrite | 4 post-rewrite |
      // 5 pre-access | 6 access | 7 post-access | 8 pre-content | 9 content
      {"handlers of the core-only phases are ignored", {1, 1, 3, 1, 2, 1, 1, 5, 1, 1}, 1, 2, 3, 5,
       8, "BSBRRAAAPP"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.what);
    const PhaseLayout l = sess::phase_layout(r.counts);
    EXPECT_EQ(l.server_rewrite, r.server_rewrite);
    EXPECT_EQ(l.find_config, r.find_config);
    EXPECT_EQ(l.rewrite, r.rewrite);
    EXPECT_EQ(l.preaccess, r.preaccess);
    EXPECT_EQ(l.precontent, r.precontent);
    std::string got;
    for (size_t h = 0; h < std::string_view(r.stages).size(); h++) {
      got += letter(sess::stage_of(l, h));
    }
    EXPECT_EQ(got, r.stages);
    check_layout(r.counts);
  }
}

TEST(PhaseLayout, EveryCombinationOfZeroToTwoHandlersMatchesNginx) {
  const Phase varied[] = {sess::kPostRead, sess::kServerRewrite, sess::kRewrite,
                          sess::kPreaccess, sess::kAccess, sess::kPrecontent, sess::kContent};
  const size_t n = sizeof(varied) / sizeof(varied[0]);
  size_t combos = 1;
  for (size_t i = 0; i < n; i++) combos *= 3;
  for (size_t c = 0; c < combos; c++) {
    size_t counts[sess::kPhaseCount] = {};
    size_t rest = c;
    for (size_t i = 0; i < n; i++) {
      counts[varied[i]] = rest % 3;
      rest /= 3;
    }
    check_layout(counts);
    if (HasFailure()) return;  // one combination's report is enough
  }
}

// ---------------------------------------------------------------------------------------------
// stage_of boundaries

TEST(StageOf, Boundaries) {
  PhaseLayout l;
  l.server_rewrite = 2;
  l.find_config = 4;
  l.rewrite = 5;
  l.preaccess = 8;
  l.precontent = 12;
  const struct {
    size_t h;
    Stage want;
  } rows[] = {
      {0, Stage::BeforeLocation},  {1, Stage::BeforeLocation},  // post-read
      {2, Stage::ServerRewrite},   {3, Stage::ServerRewrite},   // server rewrite
      {4, Stage::BeforeLocation},                               // find config
      {5, Stage::Rewrite},         {7, Stage::Rewrite},         // rewrite, post-rewrite
      {8, Stage::Access},          {11, Stage::Access},         // pre-access .. post-access
      {12, Stage::Passed},         {13, Stage::Passed},         // pre-content, content
      {1000, Stage::Passed},
  };
  for (const auto& r : rows) {
    EXPECT_STREQ(name(sess::stage_of(l, r.h)), name(r.want)) << "handler " << r.h;
  }
}

// ---------------------------------------------------------------------------------------------
// writes_allowed

TEST(WritesAllowed, Table) {
  const struct {
    const char* what;
    Stage stage;
    bool refused;
    bool subrequest;
    bool want;
  } rows[] = {
      // A `return` in the location's rewrite phase: actions apply, as in v1...
      {"location return", Stage::Rewrite, false, false, true},
      // ... unless the module itself refused there (session_require, store failure).
      {"session_require in the rewrite phase", Stage::Rewrite, true, false, false},
      // Passed every access check: pre-content, content.
      {"content", Stage::Passed, false, false, true},
      {"module refusal after access", Stage::Passed, true, false, false},
      // Refused by the access phase (allow/deny, auth_basic, auth_request, limit_req, ...).
      {"access phase refusal", Stage::Access, false, false, false},
      {"access phase, module refusal", Stage::Access, true, false, false},
      // Before the location: server-level return/session_require, find-config errors.
      {"server-level return", Stage::ServerRewrite, false, false, false},
      {"server-level session_require", Stage::ServerRewrite, true, false, false},
      {"find config (413, 301 to a directory)", Stage::BeforeLocation, false, false, false},
      {"post-read", Stage::BeforeLocation, true, false, false},
      // Subrequests never write.
      {"subrequest content", Stage::Passed, false, true, false},
      {"subrequest return", Stage::Rewrite, false, true, false},
      {"subrequest access", Stage::Access, false, true, false},
      {"subrequest before location", Stage::BeforeLocation, false, true, false},
      {"subrequest server rewrite", Stage::ServerRewrite, false, true, false},
      {"subrequest refused", Stage::Passed, true, true, false},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(sess::writes_allowed(r.stage, r.refused, r.subrequest), r.want) << r.what;
    // session_jwks's answers (public, exempt from session_require) never write, at any stage.
    EXPECT_FALSE(sess::writes_allowed(r.stage, r.refused, r.subrequest, true)) << r.what;
  }
}

TEST(WritesAllowed, ThroughTheLayout) {
  // The typical build again: which handler indexes may write for a main request.
  size_t counts[sess::kPhaseCount] = {0, 2, 0, 2, 0, 2, 3, 0, 2, 3};
  const PhaseLayout l = sess::phase_layout(counts);
  std::string got;
  for (size_t h = 0; h < 17; h++) {
    got += sess::writes_allowed(sess::stage_of(l, h), false, false) ? 'w' : '-';
  }
  //      sr sr fc rw rw pr pa pa ac ac ac po pc pc ct ct ct
  EXPECT_EQ(got, "---www------wwwww");
}
