import Foundation
import Shared
import Testing

/// What a job can reach on the host: nothing outside the worker's root.
@Suite(.serialized)
struct IsolationTests {
  @Test func aJobLeavesTheHostUntouched() throws {
    try withPool { pool in
      let mark = "isolation-\(UUID().uuidString.prefix(8))"
      let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
      let sitePackages = Self.systemSitePackages()
      let homeBefore = Self.listing(home, depth: 2)
      let siteBefore = sitePackages.map { Self.listing($0, depth: 1) }

      try pool.startCoordinator()
      try pool.startWorker("iso")
      let script = try writeScript(
        """
        { "run": [ { "method": "shell.run", "params": { "venv": "env", "message": [
          "echo HOME-IS $HOME",
          "echo TMP-IS $(mktemp -t \(mark).XXXXXX)",
          "touch ~/\(mark) && echo TOUCHED ~/\(mark)",
          "python -c \\"import tempfile, os; print('PYTMP-IS', tempfile.mkdtemp(prefix='\(mark)')); open(os.path.expanduser('~/.\(mark)'), 'w').write('x')\\"",
          "python -m pip --version",
          "echo PIPCACHE-IS $(python -m pip cache dir 2>/dev/null || echo $PIP_CACHE_DIR)",
          "echo SITE-IS $(python -c 'import site; print(site.getsitepackages()[0])')"
        ] } } ] }
        """, in: pool.directory)
      let id = try pool.submit([script])
      let view = try pool.waitForFinal(id, timeout: 120)
      let log = try pool.logLines(id).map(\.line)
      #expect(view.state == .succeeded, "\(log.joined(separator: "\n"))")

      let root = URL(fileURLWithPath: pool.workerRoot("iso")).resolvingSymlinksInPath().path
      for marker in ["HOME-IS ", "TMP-IS ", "TOUCHED ", "PYTMP-IS ", "PIPCACHE-IS ", "SITE-IS "] {
        let line = log.first { $0.hasPrefix(marker) }
        let path = line.map { String($0.dropFirst(marker.count)) } ?? "(no line)"
        #expect(path.hasPrefix(root + "/"), "\(marker)\(path) is not inside \(root)")
      }
      // Nothing of the job's outside its root: not in the real home, not in /tmp.
      #expect(!FileManager.default.fileExists(atPath: home + "/" + mark))
      #expect(!FileManager.default.fileExists(atPath: home + "/." + mark))
      let tmp = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
      #expect(!tmp.contains { $0.contains(mark) }, "the job wrote into /tmp")
      #expect(Self.listing(home, depth: 2) == homeBefore, "the job changed the host's home folder")
      if let sitePackages, let siteBefore {
        #expect(Self.listing(sitePackages, depth: 1) == siteBefore, "the system site-packages changed")
      }
    }
  }

  @Test func keepFailedKeepsTheWorkspaceForInspection() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("keeper", extra: ["--keep-failed", "1h"])
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "message": ["echo evidence > clue.txt", "exit 4"] } } ] }"#,
        in: pool.directory)
      let id = try pool.submit([script])
      let view = try pool.waitForFinal(id)
      #expect(view.state == .failed)
      #expect(view.exitCode == 4)
      #expect(view.cleanup.state == .kept)
      #expect(view.cleanup.reason?.contains("--keep-failed") == true)
      let workspace = pool.workerRoot("keeper") + "/jobs/\(id)-1"
      #expect(FileManager.default.fileExists(atPath: workspace + "/clue.txt"))
    }
  }

  @Test func statusRecordsTheEnvironmentAJobBuilt() throws {
    try withPool { pool in
      try pool.startCoordinator()
      try pool.startWorker("recorder", runtime: true)
      let script = try writeScript(
        #"{ "run": [ { "method": "shell.run", "params": { "path": "app", "venv": "env", "message": "python --version" } } ] }"#,
        in: pool.directory)
      let id = try pool.submit([script])
      // The first use of the shared runtime installs it from PyPI.
      let view = try pool.waitForFinal(id, timeout: 300)
      let lines = try pool.logLines(id).map(\.line)
      #expect(view.state == .succeeded, "\(view.error ?? "") \(lines)")
      let venvs = try #require(view.environment?["venvs"]?.arrayValue)
      #expect(venvs.count == 1)
      #expect(venvs.first?["path"]?.stringValue == "app/env")
      #expect(venvs.first?["python"]?.stringValue?.first?.isNumber == true)
      #expect(venvs.first?["packages"]?.arrayValue != nil)
      #expect(pool.cli(["status", id]).stdout.contains("venv      app/env: Python"))
      // Built by the runtime's uv, whose version the record names.
      let tools = view.environment?["runtime"]?["tools"]?.arrayValue ?? []
      #expect(
        tools.contains { $0["name"]?.stringValue == "uv" && $0["version"]?.stringValue?.isEmpty == false })
    }
  }

  /// Names and modification times of a tree, to a depth.
  static func listing(_ root: String, depth: Int) -> [String: Double] {
    var result: [String: Double] = [:]
    func walk(_ path: String, _ level: Int) {
      guard level <= depth, let names = try? FileManager.default.contentsOfDirectory(atPath: path) else {
        return
      }
      for name in names {
        let full = path + "/" + name
        var info = stat()
        guard lstat(full, &info) == 0 else { continue }
        result[full] = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        if (info.st_mode & S_IFMT) == S_IFDIR { walk(full, level + 1) }
      }
    }
    walk(root, 1)
    return result
  }

  static func systemSitePackages() -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import site; print(site.getsitepackages()[0])"]
    let pipe = Pipe()
    process.standardOutput = pipe
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return path.isEmpty ? nil : path
  }
}
