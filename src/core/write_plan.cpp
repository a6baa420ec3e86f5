#include "write_plan.h"

namespace sess {

AfterWrite after_write(const WritePlan& p, WriteOutcome o, bool others_failed) noexcept {
  if (p.logout && p.logout_all && (others_failed || o != WriteOutcome::Done)) {
    return AfterWrite::RefuseExpire;
  }
  if (o == WriteOutcome::Done || p.logout) return AfterWrite::Proceed;
  switch (p.record) {
    case RecordWrite::Touch:
      return AfterWrite::DropCookie;  // not renewed: gone, moved, or Redis did not confirm
    case RecordWrite::Update:
    case RecordWrite::Move:
      // Gone: a logout came first, which is final. Moved: session_regenerate gave the session
      // another id meanwhile; the change cannot follow it (whoever holds the old id could write
      // into the new session) and is refused, not reported as made.
      return o == WriteOutcome::Gone ? AfterWrite::DropCookie : AfterWrite::Refuse;
    case RecordWrite::None:
      return AfterWrite::Proceed;
    case RecordWrite::Create:
    case RecordWrite::Delete:
    default:
      return AfterWrite::Refuse;
  }
}

}  // namespace sess
