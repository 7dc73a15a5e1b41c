import Foundation
import Shared
import Testing

/// The client commands against a real pool: human output, exit statuses, and errors
/// that arrive quickly and say what was wrong.
@Suite struct ClientCommandTests {
  @Test func exitStatusesAndHumanOutput() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("a")
      let good = try writeScript(
        """
        { "run": [
          { "method": "shell.run", "params": { "message": "echo good-line" } },
          { "id": "publish", "method": "local.set", "params": { "url": "http://127.0.0.1:8188" } }
        ] }
        """, name: "good.json", in: pool.directory)
      let bad = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": "echo bad-line; exit 3" } } ] }"#,
        name: "bad.json", in: pool.directory)

      // --follow: the log on stdout, the final state on stderr, 0 only on success.
      let succeeded = pool.cli(["submit", good, "--follow"])
      #expect(succeeded.status == 0, "\(succeeded.stderr)")
      #expect(succeeded.stdout.contains("good-line"))
      #expect(succeeded.stderr.range(of: #"job \d+ succeeded in"#, options: .regularExpression) != nil)
      let failed = pool.cli(["submit", bad, "--follow"])
      #expect(failed.status == 1)
      #expect(failed.stdout.contains("bad-line"))
      #expect(
        failed.stderr.range(
          of: #"job \d+ failed after \d+:\d\d \(exit code 3\)"#, options: .regularExpression) != nil,
        "\(failed.stderr)")
      // Not a terminal: no status line, no colour.
      #expect(!succeeded.stderr.contains("\u{1B}["))

      // logs --follow of a finished job ends at once with the same status.
      #expect(pool.cli(["logs", "1", "--follow"]).status == 0)
      #expect(pool.cli(["logs", "2", "--follow"]).status == 1)

      // status: the step timeline with labels, locals, cleanup.
      _ = try pool.waitForFinal("1")
      let status = pool.cli(["status", "1"])
      #expect(status.status == 0)
      #expect(status.stdout.contains("✓ 1  shell.run"), "\(status.stdout)")
      #expect(status.stdout.contains("✓ 2  local.set (publish)"), "\(status.stdout)")
      #expect(status.stdout.contains("local     url = http://127.0.0.1:8188"), "\(status.stdout)")
      #expect(status.stdout.contains("cleanup   done"), "\(status.stdout)")
      let json: JobView = try pool.json(["status", "1"])
      #expect(json.steps == ["shell.run", "local.set (publish)"])

      let jobs = pool.cli(["jobs"])
      #expect(jobs.stdout.hasPrefix("ID  NAME"), "\(jobs.stdout)")
      #expect(jobs.stdout.contains("succeeded  a"), "\(jobs.stdout)")
      let workers = pool.cli(["workers"])
      #expect(workers.stdout.hasPrefix("NAME  STATE"), "\(workers.stdout)")

      // Errors: specific, and with the documented statuses.
      let missing = pool.cli(["status", "99999"])
      #expect(missing.status == 1)
      #expect(missing.stderr.contains("no job '99999'"))
      let notAnID = pool.cli(["logs", "latest"])
      #expect(notAnID.status == 2)
      #expect(notAnID.stderr.contains("'latest' is not a job id"))
      let unknownFlag = pool.cli(["workers", "--all"])
      #expect(unknownFlag.status == 2)
      #expect(unknownFlag.stderr.contains("Unknown option '--all'"))
    }
  }

  @Test func daemonsRefuseBadFlagValuesAsUsageErrors() throws {
    try withPool { pool in
      let data = pool.directory.appendingPathComponent("never").path
      let bind = "tcp://127.0.0.1:\(Pool.freePort())"
      let cases: [([String], String)] = [
        (["coordinator", "--max-bundle", "lots"], "--max-bundle/--max-message"),
        (
          ["coordinator", "--max-message", "5MiB", "--max-bundle", "6MiB"], "must be larger than --max-bundle"
        ),
        (["coordinator", "--max-message", "1MiB", "--max-bundle", "512KiB"], "must be at least 4MiB"),
        (["coordinator", "--artifact-limit", "-1"], "--artifact-limit"),
        (["coordinator", "--artifact-pool-limit", "x"], "--artifact-pool-limit"),
        (["coordinator", "--submit-rate", "-1"], "--submit-rate"),
        (["coordinator", "--retention", "forever"], "--retention"),
        (["worker", "--upload-rate", "fast"], "--upload-rate"),
        (["worker", "--upload-rate", "0"], "--upload-rate"),
        (["worker", "--max-log-line", "12"], "--max-log-line"),
        (["worker", "--cache-budget", "big"], "--cache-budget"),
      ]
      for (arguments, expected) in cases {
        let place = arguments[0] == "coordinator" ? ["--data", data, "--bind", bind] : ["--root", data]
        let result = pool.cli(arguments + place, timeout: 30)
        #expect(result.status == 2, "\(arguments): \(result.status) \(result.stderr)")
        #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
      }
      // Refused before anything was made.
      #expect(!FileManager.default.fileExists(atPath: data))
    }
  }

  @Test func anUnreachableCoordinatorIsAClearErrorWithinSeconds() throws {
    try withPool { pool in
      let endpoint = "tcp://127.0.0.1:\(Pool.freePort())"
      for arguments in [["jobs"], ["status", "1"], ["logs", "1", "--follow"]] {
        let start = Date()
        let result = pool.cli(arguments + ["--coordinator", endpoint])
        let seconds = Date().timeIntervalSince(start)
        #expect(result.status == 3, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains("no answer from the coordinator at \(endpoint) within 5 s"))
        // The default --reply-timeout is 5 s; never a hang.
        #expect(seconds < 10, "\(arguments) took \(seconds) s")
      }
    }
  }
}
