import Foundation
import Shared
import Testing

/// What an operator does to a running pool: drain a box, cancel, time out, retry.
@Suite(.serialized)
struct OperationsTests {
  @Test func aDrainedWorkerFinishesItsJobAndTakesNoNewOne() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("edge-3")
      let slow = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo working; sleep 1; echo finished" } } ] }"#,
        name: "slow.json", in: pool.directory)
      let running = try pool.submit([slow])
      _ = try pool.waitForState(running, [.running], timeout: 30)
      let drain = pool.cli(["drain", "edge-3"])
      #expect(drain.status == 0)
      #expect(drain.stdout.contains("edge-3 is draining"))
      let waiting = try pool.submit([slow])
      #expect(try pool.waitForFinal(running).state == .succeeded)
      let view = try pool.status(waiting)
      #expect(view.state == .queued)
      #expect(view.waitReason == "every online worker is drained")
      let workers: [WorkerView] = try pool.json(["workers"])
      #expect(workers.first?.state == .drained)

      #expect(pool.cli(["undrain", "edge-3"]).status == 0)
      #expect(try pool.waitForFinal(waiting).state == .succeeded)
      #expect(pool.cli(["drain", "no-such-box"]).stderr.contains("no worker named 'no-such-box'"))
    }
  }

  @Test func cancelTimeoutAndRetries() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("w", slots: 3)
      let sleeper = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo up; sleep 600" } } ] }"#,
        name: "sleeper.json", in: pool.directory)
      let cancelled = try pool.submit([sleeper])
      let timed = try pool.submit([sleeper, "--timeout", "1s"])
      _ = try pool.waitForState(cancelled, [.running], timeout: 30)
      let cancel = pool.cli(["cancel", cancelled])
      #expect(cancel.stdout.contains("cancelling job \(cancelled)"))
      let cancelledView = try pool.waitForFinal(cancelled)
      #expect(cancelledView.state == .cancelled)
      #expect(cancelledView.cleanup.state == .done)
      let timedView = try pool.waitForFinal(timed)
      #expect(timedView.state == .failed)
      #expect(timedView.error?.contains("timed out after 1 s") == true)

      let flaky = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo try $PINPOOL_ATTEMPT; test $PINPOOL_ATTEMPT -ge 3" } } ] }"#,
        name: "flaky.json", in: pool.directory)
      let retried = try pool.waitForFinal(try pool.submit([flaky, "--retries", "2"]))
      #expect(retried.state == .succeeded)
      #expect(retried.attempt == 3)
      let gaveUp = try pool.waitForFinal(try pool.submit([flaky, "--retries", "1"]))
      #expect(gaveUp.state == .failed)
      #expect(gaveUp.attempt == 2)
      #expect(pool.cli(["cancel", cancelled]).stdout.contains("had already finished"))
    }
  }
}

@Suite(.serialized)
struct ArrayTests {
  @Test func anArrayIsListedAndCancelledTogether() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("w")
      let script = try writeScript(
        #"{ "run": [ { "method": "log", "params": { "text": "transcode {{args.index}}" } } ] }"#,
        in: pool.directory)
      let done: SubmitReply = try pool.json(["submit", script, "--array", "1,3,5-7"])
      #expect(done.ids.count == 5)
      for id in done.ids { #expect(try pool.waitForFinal(id).state == .succeeded) }
      #expect(try pool.logLines(done.ids[1]).contains { $0.line == "transcode 3" })

      let waiting: SubmitReply = try pool.json(["submit", script, "--array", "1-4", "--gpus", "2"])
      let listed: [JobView] = try pool.json(["jobs", "--array", waiting.id])
      #expect(listed.map(\.id) == waiting.ids)
      #expect(listed.allSatisfy { $0.array == waiting.id && $0.state == .queued })
      #expect(pool.cli(["cancel", "--array", waiting.id]).status == 0)
      let after: [JobView] = try pool.json(["jobs", "--array", waiting.id])
      #expect(after.allSatisfy { $0.state == .cancelled })
      #expect(pool.cli(["cancel", "--array", "99999"]).stderr.contains("no array '99999'"))
    }
  }
}
