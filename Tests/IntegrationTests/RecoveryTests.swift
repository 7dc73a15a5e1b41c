import Foundation
import Shared
import Testing

/// Crashes, stalls and restarts with real processes: no job runs twice, no job or log
/// line is lost.
@Suite(.serialized)
struct RecoveryTests {
  @Test func aKilledWorkersJobIsRequeuedAndSucceedsElsewhere() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("first")
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": [
          "echo attempt $PINPOOL_ATTEMPT on its way",
          "if [ \\"$PINPOOL_ATTEMPT\\" = 1 ]; then exec sleep 600; fi",
          "echo attempt $PINPOOL_ATTEMPT done"
        ] } } ] }
        """, in: pool.directory)
      let id = try pool.submit([script])
      try pool.waitUntil("attempt 1 runs", timeout: 30) {
        (try? pool.logLines(id))?.contains { $0.line == "attempt 1 on its way" } == true
      }
      pool.killWorker("first")
      try pool.startWorker("second")
      let view = try pool.waitForFinal(id, timeout: 60)
      #expect(view.state == .succeeded)
      #expect(view.attempt == 2)
      #expect(view.worker == "second")
      let lines = try pool.logLines(id).map(\.line)
      #expect(lines.contains("attempt 2 done"))
      #expect(lines.filter { $0 == "attempt 1 on its way" }.count == 1)

      // The first worker comes back: it kills what its earlier run left (attempt 1's
      // process), and the job's result stays the one attempt 2 reported.
      let leftover = WorkerLifecycleTests.processes(named: "sleep").filter {
        (try? String(contentsOfFile: "/proc/\($0)/environ", encoding: .utf8))?.contains(
          "PINPOOL_WORKSPACE=\(pool.workerRoot("first"))") == true
      }
      #expect(!leftover.isEmpty)
      try pool.startWorker("first")
      try pool.waitUntil("attempt 1's process is gone", timeout: 30) {
        Set(WorkerLifecycleTests.processes(named: "sleep")).isDisjoint(with: leftover)
      }
      #expect(try pool.status(id).state == .succeeded)
      #expect(try pool.status(id).attempt == 2)
    }
  }

  @Test func aStoppedWorkersStaleAttemptCannotOverwriteTheResult() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("sleepy")
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": [
          "echo attempt $PINPOOL_ATTEMPT started",
          "sleep 3",
          "echo attempt $PINPOOL_ATTEMPT finished; exit $PINPOOL_ATTEMPT"
        ] } } ] }
        """, in: pool.directory)
      let id = try pool.submit([script, "--retries", "0"])
      try pool.waitUntil("attempt 1 runs", timeout: 30) {
        (try? pool.logLines(id))?.contains { $0.line == "attempt 1 started" } == true
      }
      // Freeze the worker past its liveness window (10 heartbeats of 0.2 s).
      pool.killWorker("sleepy", signal: SIGSTOP)
      try pool.waitUntil("the worker is declared offline", timeout: 30) {
        let workers: [WorkerView]? = try? pool.json(["workers"])
        return workers?.first { $0.name == "sleepy" }?.state == .offline
      }
      try pool.startWorker("awake")
      let requeued = try pool.waitForState(id, [.running, .assigned, .succeeded, .failed], timeout: 30)
      #expect(requeued.attempt == 2)
      // Attempt 1 wakes up, finishes, and reports exit 1: refused, and told to stop.
      pool.killWorker("sleepy", signal: SIGCONT)
      let view = try pool.waitForFinal(id, timeout: 60)
      #expect(view.worker == "awake")
      #expect(view.attempt == 2)
      #expect(view.exitCode == 2)
      try pool.waitUntil("the stale worker reconnects", timeout: 30) {
        let workers: [WorkerView]? = try? pool.json(["workers"])
        return workers?.first { $0.name == "sleepy" }?.state == .online
      }
      let again = try pool.status(id)
      #expect(again.attempt == 2 && again.exitCode == 2 && again.worker == "awake")
    }
  }

  @Test func aCoordinatorCrashLosesNoJobAndNoLogLine() throws {
    try withPool { pool in
      try pool.startCoordinator()
      for name in ["a", "b", "c"] { try pool.startWorker(name, slots: 2) }
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": [
          "for i in $(seq 1 20); do echo job-$PINPOOL_JOB_ID-line-$i; done",
          "sleep 0.$(( $PINPOOL_JOB_ID % 5 ))"
        ] } } ] }
        """, in: pool.directory)
      let reply: SubmitReply = try pool.json(["submit", script, "--array", "1-200"])
      #expect(reply.ids.count == 200)
      try pool.waitUntil("some jobs are done and some still run", timeout: 60) {
        let jobs: [JobView]? = try? pool.json(["jobs", "--limit", "300"])
        return (jobs?.filter { $0.state == .succeeded }.count ?? 0) >= 20
      }
      pool.killCoordinator()
      try pool.startCoordinator()

      do {
        try pool.waitUntil("every job is final", timeout: 180) {
          let jobs: [JobView]? = try? pool.json(["jobs", "--limit", "300"])
          return jobs?.count == 200 && jobs?.allSatisfy { $0.state.isFinal } == true
        }
      } catch {
        let jobs: [JobView] = (try? pool.json(["jobs", "--limit", "300"])) ?? []
        let stuck = jobs.filter { !$0.state.isFinal }.prefix(5).map {
          "\($0.id) \($0.state.rawValue) attempt \($0.attempt) on \($0.worker ?? "-") step \($0.step.index)/\($0.step.count)"
        }
        Issue.record("not final: \(stuck)")
        throw error
      }
      let jobs: [JobView] = try pool.json(["jobs", "--limit", "300"])
      #expect(Set(jobs.map(\.id)) == Set(reply.ids))
      #expect(
        jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.filter { $0.state != .succeeded }.map(\.id))")
      for job in jobs where job.state == .succeeded {
        // Lines of the attempt that succeeded (an attempt lost to the crash may have
        // left a partial log of its own before it).
        let all = try pool.logLines(job.id)
        let lines = all.filter { $0.attempt == job.attempt }.map(\.line).filter { $0.hasPrefix("job-") }
        if lines.count != 20 {
          let attempts = Dictionary(grouping: all, by: \.attempt).mapValues(\.count)
          Issue.record(
            "job \(job.id) attempt \(job.attempt) on \(job.worker ?? "-"): lines by attempt \(attempts)\n\(pool.daemonLogs().suffix(3000))"
          )
        }
        #expect(lines == (1...20).map { "job-\(job.id)-line-\($0)" }, "job \(job.id): \(lines.count) lines")
      }
    }
  }
}

@Suite(.serialized)
struct LogFileRecoveryTests {
  /// A chatty job's log goes to the coordinator's log file in chunks; the coordinator is
  /// killed while it writes them (perhaps between a chunk's bytes and its index row) and
  /// started again. Every line is stored exactly once, in order.
  @Test func aCoordinatorCrashMidLogKeepsEveryLineOnce() throws {
    try withPool { pool in
      try pool.startCoordinator(liveness: 30)
      try pool.startWorker("chatty")
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "for i in $(seq 1 40); do seq -f \"chatty-$i-%g\" 1 5000; sleep 0.05; done" } } ] }"#,
        in: pool.directory)
      let id = try pool.submit([script])
      let file = pool.dataDirectory + "/logs/\(id).log"
      try pool.waitUntil("the log file grows", timeout: 60) {
        ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) > 200_000
      }
      pool.killCoordinator()
      try pool.startCoordinator(liveness: 30)
      let view = try pool.waitForFinal(id, timeout: 120)
      #expect(view.state == .succeeded)
      #expect(view.attempt == 1)
      let lines = try pool.logLines(id).filter { $0.line.hasPrefix("chatty-") }
      let expected = (1...40).flatMap { i in (1...5000).map { "chatty-\(i)-\($0)" } }
      #expect(lines.count == expected.count)
      #expect(lines.map(\.line) == expected)
      let seqs = lines.map(\.seq)
      #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $0 + 1 == $1 })
    }
  }
}

@Suite(.serialized)
struct SpoolTests {
  /// The coordinator stalls while a job prints a lot and ends; the worker is then
  /// killed before anything was acknowledged. Restarted, it delivers the whole log and
  /// the result from its on-disk spool.
  @Test func aWorkerCrashAfterItsJobEndedLosesNoLine() throws {
    try withPool { pool in
      // A long liveness window: the stall must not make the job count as lost.
      try pool.startCoordinator(liveness: 300)
      try pool.startWorker("spooler")
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "sleep 1; seq 1 100000 | sed 's/^/spooled-/'" } } ] }"#,
        in: pool.directory)
      let id = try pool.submit([script])
      _ = try pool.waitForState(id, [.running], timeout: 30)
      let coordinator = try #require(pool.coordinator)
      kill(coordinator.processIdentifier, SIGSTOP)
      defer { kill(coordinator.processIdentifier, SIGCONT) }
      let spool = pool.workerRoot("spooler") + "/spool"
      try pool.waitUntil("the job's result is in the spool", timeout: 60) {
        // Binary (the log lines), with the result as a text record.
        let data = spoolFile(in: spool, of: id).flatMap { FileManager.default.contents(atPath: $0) } ?? Data()
        return data.range(of: Data("\nF {".utf8)) != nil
      }
      pool.killWorker("spooler")
      kill(coordinator.processIdentifier, SIGCONT)
      try pool.startWorker("spooler")
      let view = try pool.waitForFinal(id, timeout: 60)
      #expect(view.state == .succeeded)
      #expect(view.attempt == 1)
      let lines = try pool.logLines(id).map(\.line).filter { $0.hasPrefix("spooled-") }
      #expect(lines.count == 100_000)
      #expect(lines.first == "spooled-1" && lines.last == "spooled-100000")
      #expect(Set(lines).count == 100_000)
      try pool.waitUntil("the spool is dropped once acknowledged", timeout: 30) {
        spoolFile(in: spool, of: id) == nil
      }
    }
  }

  /// The spool file whose first record (the assignment) is the job's first attempt's.
  private func spoolFile(in folder: String, of jobID: String) -> String? {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    return names.map { folder + "/" + $0 }.first { path in
      guard let data = FileManager.default.contents(atPath: path), data.starts(with: Data("S ".utf8)),
        let end = data.firstIndex(of: 0x0A),
        let record = try? JSONSerialization.jsonObject(with: data[data.startIndex + 2..<end])
          as? [String: Any],
        let job = record["job"] as? [String: Any]
      else { return false }
      return job["jobID"] as? String == jobID && job["attempt"] as? Int == 1
    }
  }
}

@Suite(.serialized)
struct FollowAcrossRestartTests {
  @Test func logsFollowSurvivesACoordinatorRestart() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("w")
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "for i in $(seq 1 40); do echo tick-$i; sleep 0.1; done" } } ] }"#,
        in: pool.directory)
      let id = try pool.submit([script])
      try pool.waitUntil("the job prints", timeout: 30) {
        (try? pool.logLines(id))?.contains { $0.line == "tick-3" } == true
      }
      // A follower started now, reading through the restart below.
      let follower = Process()
      follower.executableURL = URL(fileURLWithPath: Pool.binary)
      follower.arguments = ["logs", id, "--follow", "--coordinator", pool.endpoint]
      let output = Pipe()
      follower.standardOutput = output
      follower.standardError = FileHandle.nullDevice
      try follower.run()
      defer {
        if follower.isRunning { kill(follower.processIdentifier, SIGKILL) }
        follower.waitUntilExit()
      }

      pool.killCoordinator()
      try pool.startCoordinator()
      // Its 40 lines fit in the pipe, so it can end before anything is read; waiting
      // with a deadline keeps a follower that never ends from hanging the test.
      try pool.waitUntil("the follower ends", timeout: 60) { !follower.isRunning }
      let data = output.fileHandleForReading.readDataToEndOfFile()
      let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
      #expect(follower.terminationStatus == 0)
      #expect(lines.filter { $0.hasPrefix("tick-") } == (1...40).map { "tick-\($0)" })
    }
  }
}
