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
