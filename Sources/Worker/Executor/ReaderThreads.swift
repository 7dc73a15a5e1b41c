import Foundation
import Synchronization

/// The threads that start commands and read their pipes (`ShellPipeReader`), kept
/// parked between commands instead of made for each one.
///
/// Why: a trivial job is one command, and a thread made for it cost a `clone3`, a fresh
/// 8 MiB stack whose first pages fault in (glibc keeps only a few exited stacks, fewer
/// than a worker's slots), and the thread's set-up and exit: several percent of a busy
/// worker. Blocking reads still never run on the concurrency pool.
final class ReaderThreads: Sendable {
  static let shared = ReaderThreads(keepParked: 64)

  /// One thread's mailbox: the next work, and the semaphore it sleeps on while parked.
  private final class Parked: Sendable {
    let wake = DispatchSemaphore(value: 0)
    let work = Mutex<(@Sendable () -> Void)?>(nil)
  }

  /// More threads than this are let go when their command ends.
  let keepParked: Int
  private let parked = Mutex<[Parked]>([])

  init(keepParked: Int) { self.keepParked = keepParked }

  /// Threads parked now (for tests).
  var parkedCount: Int { parked.withLock { $0.count } }

  /// Runs `work` on a parked thread, or on a new one when none is parked.
  func run(_ work: @escaping @Sendable () -> Void) {
    if let thread = parked.withLock({ $0.popLast() }) {
      thread.work.withLock { $0 = work }
      thread.wake.signal()
      return
    }
    let mailbox = Parked()
    mailbox.work.withLock { $0 = work }
    let thread = Thread { [self] in
      while true {
        let next = mailbox.work.withLock { work in
          defer { work = nil }
          return work
        }
        next?()
        let kept = parked.withLock { list in
          guard list.count < keepParked else { return false }
          list.append(mailbox)
          return true
        }
        guard kept else { return }
        // A `run` that pops this mailbox between the append and the wait has already
        // signalled: the semaphore counts it.
        mailbox.wake.wait()
      }
    }
    thread.name = "pinpool-shell-reader"
    thread.start()
  }
}
