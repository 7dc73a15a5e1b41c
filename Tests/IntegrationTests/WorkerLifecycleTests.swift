import Foundation
import Shared
import Testing

/// The worker process around its jobs: probing what it has, and cleaning up after a
/// crash of its own.
@Suite(.serialized)
struct WorkerLifecycleTests {
  @Test func malformedProbeOutputWarnsAndTheWorkerStillRegisters() throws {
    try withPool { pool in
      let tools = pool.directory.appendingPathComponent("fake-tools")
      try FileManager.default.createDirectory(at: tools, withIntermediateDirectories: true)
      let fake = tools.appendingPathComponent("nvidia-smi")
      try "#!/bin/sh\necho 'this is not, a csv line'\necho '0, GPU-1, NVIDIA A100, lots, 1000, 550.1, 8.0'\n"
        .write(
          to: fake, atomically: true, encoding: .utf8)
      chmod(fake.path, 0o755)
      let path = tools.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")

      let probe = pool.cli(
        ["worker", "--probe", "--root", pool.workerRoot("probe")], environment: ["PATH": path])
      #expect(probe.status == 0)
      #expect(probe.stderr.contains("warning"), "\(probe.stderr)")
      let view = try JSONDecoder().decode(WorkerView.self, from: Data(probe.stdout.utf8))
      #expect(view.gpus.isEmpty)

      try pool.startCoordinator()
      // Probing (no --gpu, no --no-gpu) with the broken tool on PATH.
      try pool.startWorker("probed", extra: ["--probe-gpus"], environment: ["PATH": path])
      let workers: [WorkerView] = try pool.json(["workers"])
      #expect(workers.first { $0.name == "probed" }?.state == .online)
    }
  }

  /// After the last running job, the cache goes down to its budget, least recently
  /// modified entries first, off the worker's main loop; the next job runs after it.
  @Test func theCacheIsTrimmedToItsBudgetAndJobsGoOn() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("cached", extra: ["--cache-budget", "1MB"])
      // Three entries of 700 kB, e1 the most recently modified: 2.1 MB against 1 MB.
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": [
          "for i in 1 2 3; do mkdir -p \\"$PIP_CACHE_DIR/e$i\\" && head -c 700000 /dev/zero > \\"$PIP_CACHE_DIR/e$i/blob\\"; done",
          "touch -d '3 hours ago' \\"$PIP_CACHE_DIR/e3\\"; touch -d '2 hours ago' \\"$PIP_CACHE_DIR/e2\\"; touch -d '1 hour ago' \\"$PIP_CACHE_DIR/e1\\""
        ] } } ] }
        """, name: "fill.json", in: pool.directory)
      let filled = try pool.waitForFinal(try pool.submit([script]))
      #expect(filled.state == .succeeded, "\(pool.daemonLogs())")
      let pip = pool.workerRoot("cached") + "/cache/pip"
      try pool.waitUntil("the cache is within its budget", timeout: 30) {
        !FileManager.default.fileExists(atPath: pip + "/e2")
          && !FileManager.default.fileExists(atPath: pip + "/e3")
      }
      #expect(FileManager.default.fileExists(atPath: pip + "/e1/blob"))
      let echo = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": "ls \\"$PIP_CACHE_DIR\\"" } } ] }
        """, name: "after.json", in: pool.directory)
      let after = try pool.submit([echo])
      #expect(try pool.waitForFinal(after).state == .succeeded)
      #expect(try pool.logLines(after).contains { $0.line == "e1" })
    }
  }

  @Test func aRestartedWorkerKillsWhatItsEarlierRunLeftBehind() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("crashy")
      let marker = "leftover-\(UUID().uuidString.prefix(8))"
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "message": "echo started; exec -a \(marker) sleep 600" } } ] }
        """, in: pool.directory)
      let id = try pool.submit([script])
      try pool.waitUntil("the job prints", timeout: 30) {
        (try? pool.logLines(id))?.contains { $0.line == "started" } == true
      }
      let first = Self.processes(named: marker)
      #expect(!first.isEmpty)
      pool.killWorker("crashy")
      // The job's process group outlives a SIGKILLed worker...
      #expect(Set(Self.processes(named: marker)).isSuperset(of: first))
      try pool.startWorker("crashy")
      // ...until the worker starts again and ends it, and the stale workspace is gone.
      // (The coordinator then runs the job again as attempt 2, with processes of its own.)
      try pool.waitUntil("the leftover process is gone", timeout: 30) {
        Set(Self.processes(named: marker)).isDisjoint(with: first)
      }
      // The worker removes the stale workspace right after killing its processes; the kill
      // is what the test sees first (`startWorker` returns as soon as the coordinator, not
      // yet aware of the crash, lists the worker online), so wait for the removal too.
      try pool.waitUntil("the stale workspace is gone", timeout: 30) {
        !FileManager.default.fileExists(atPath: pool.workerRoot("crashy") + "/jobs/\(id)-1")
      }
      _ = pool.cli(["cancel", id])
    }
  }

  /// Live (non-zombie) processes whose command line starts with `name`.
  static func processes(named name: String) -> [String] {
    var found: [String] = []
    for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(pid) != nil {
      guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
        String(decoding: cmdline, as: UTF8.self).hasPrefix(name)
      else { continue }
      let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
      if !stat.contains(") Z ") { found.append(pid) }
    }
    return found
  }
}
