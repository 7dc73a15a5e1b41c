import Foundation
import Shared
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Runs every case of `../shared/compat/cases` through a real coordinator and worker,
/// as its `case.json` describes (format in `../shared/compat/README.md`). A missing
/// corpus is a failure, never a skip.
@Suite(.serialized)
struct CompatCorpusTests {
  static var corpus: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/compat/cases")
  }

  static var caseNames: [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: corpus.path).filter { !$0.hasPrefix(".") }.sorted())
      ?? []
  }

  @Test func corpusIsPresent() throws {
    #expect(
      FileManager.default.fileExists(atPath: Self.corpus.path),
      "the compat corpus is missing at \(Self.corpus.path)")
    #expect(Self.caseNames.count >= 12)
  }

  @Test(arguments: caseNames)
  func corpusCase(_ name: String) throws {
    let folder = Self.corpus.appendingPathComponent(name)
    let spec = try CaseSpec(folder: folder)
    for run in spec.runs {
      for variant in [nil] + spec.variants.map(Optional.some) {
        try CaseRunner(spec: spec, run: run, variant: variant).execute()
      }
    }
  }
}

/// One case's `case.json`, read with the project's own loader.
struct CaseSpec {
  var name: String
  var folder: URL
  var entry: String
  var args: JSONObject
  var runs: [(gpus: [String], expect: JSONObject)]
  var variants: [(step: Int, with: JSONValue)]
  var workerEnv: [String: String]
  var serve: (path: String, bytes: Int, seed: Int)?
  var canaryFile: String?
  var cancelAfter: Double?

  init(folder: URL) throws {
    name = folder.lastPathComponent
    self.folder = folder
    let text = try String(contentsOf: folder.appendingPathComponent("case.json"), encoding: .utf8)
    let object = try #require(try ScriptSource.parse(text, file: "case.json").value.objectValue)
    entry = try #require(object["entry"]?.stringValue)
    args = object["args"]?.objectValue ?? JSONObject()
    if let runList = object["runs"]?.arrayValue {
      runs = try runList.map { run in
        let gpus = run["worker"]?["gpus"]?.arrayValue?.compactMap(\.stringValue) ?? []
        return (gpus, try #require(run["expect"]?.objectValue))
      }
    } else {
      runs = [([], try #require(object["expect"]?.objectValue))]
    }
    variants = (object["variants"]?.arrayValue ?? []).compactMap { v in
      guard let step = v["replace_step"]?.numberValue, let with = v["with"] else { return nil }
      return (Int(step), with)
    }
    var env: [String: String] = [:]
    for (key, value) in object["worker_env"]?.objectValue ?? JSONObject() { env[key] = value.stringValue }
    workerEnv = env
    if let serve = object["serve_over_http"] {
      self.serve = (
        serve["path"]?.stringValue ?? "/file", Int(serve["bytes"]?.numberValue ?? 0),
        Int(serve["seed"]?.numberValue ?? 0)
      )
    }
    canaryFile = object["canary_dir_with_file"]?.stringValue
    cancelAfter = object["cancel_after_seconds"]?.numberValue
  }
}

struct CaseRunner {
  var spec: CaseSpec
  var run: (gpus: [String], expect: JSONObject)
  var variant: (step: Int, with: JSONValue)?

  var label: String {
    spec.name + (run.gpus.isEmpty ? "" : " gpus=\(run.gpus)")
      + (variant.map { " variant step \($0.step)" } ?? "")
  }

  func execute() throws {
    try withPool { pool in
      var placeholders: [String: String] = [:]
      var server: HTTPFixture?
      defer { server?.stop() }
      if let serve = spec.serve {
        let fixture = try HTTPFixture(
          directory: pool.directory, path: serve.path, bytes: serve.bytes, seed: serve.seed)
        server = fixture
        placeholders["${HTTP_BASE}"] = fixture.base
        placeholders["${SHA256_OF_SERVED_FILE}"] = fixture.sha256
      }
      var canary: URL?
      if let file = spec.canaryFile {
        let dir = pool.directory.appendingPathComponent("canary")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "keep".write(to: dir.appendingPathComponent(file), atomically: true, encoding: .utf8)
        canary = dir
        placeholders["${CANARY_DIR}"] = dir.path
      }
      func substitute(_ text: String) -> String {
        placeholders.reduce(text) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
      }

      let bundle = try prepareBundle(in: pool.directory)
      try pool.startCoordinator()
      try pool.startWorker("compat", gpus: run.gpus, environment: spec.workerEnv)
      let outside = snapshotOutside(pool)

      // The worker's own checks are under test, so the CLI's pre-submit validation is off.
      var arguments = [bundle.path, "--entry", spec.entry, "--no-validate"]
      for (key, value) in spec.args {
        arguments += ["--arg", "\(key)=\(substitute(value.stringValue ?? value.serialized()))"]
      }
      let started = Date()
      let id = try pool.submit(arguments)
      let expect = run.expect
      let expectedState = JobState(rawValue: expect["status"]?.stringValue ?? "succeeded") ?? .succeeded

      if let delay = spec.cancelAfter {
        _ = try pool.waitForState(id, [.running, .serving], timeout: 60)
        // The case asks for the job to run this long before it is cancelled.
        Thread.sleep(forTimeInterval: delay)
        #expect(pool.cli(["cancel", id]).status == 0, "\(label): cancel failed")
      }
      let view: JobView
      if expectedState == .serving {
        view = try pool.waitForState(id, [.serving, .failed, .succeeded, .cancelled], timeout: 60)
      } else {
        view = try pool.waitForFinal(id, timeout: 90)
      }
      let elapsed = Date().timeIntervalSince(started)
      let log = try pool.logLines(id).map(\.line)
      let context =
        "\(label): job \(view.state.rawValue), error: \(view.error ?? "-")\n" + log.joined(separator: "\n")

      #expect(view.state == expectedState, "\(context)")
      try checkLog(expect, log: log, substitute: substitute, context: context)
      for mention in expect["error_mentions"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
        #expect(
          (view.error ?? "").lowercased().contains(mention.lowercased()),
          "\(context)\nerror lacks '\(mention)'")
      }
      if let code = expect["exit_code"]?.numberValue { #expect(view.exitCode == Int32(code), "\(context)") }
      for (key, pattern) in expect["locals"]?.objectValue ?? JSONObject() {
        let value = view.locals[key]?.stringValue ?? ""
        #expect(
          value.range(of: pattern.stringValue ?? "", options: .regularExpression) != nil,
          "\(context)\nlocal \(key)='\(value)'")
      }
      if let limit = expect["finishes_within_seconds"]?.numberValue {
        #expect(elapsed <= limit, "\(context)\ntook \(elapsed) s")
      }
      if let text = expect["http_get_local_url_contains"]?.stringValue {
        let url = try #require(view.locals["url"]?.stringValue.flatMap(URL.init(string:)))
        let body = try String(contentsOf: url, encoding: .utf8)
        #expect(body.contains(text), "\(context)\nGET \(url) gave \(body)")
      }
      if let marker = expect["env_paths_inside_worker_root"]?.arrayValue?.compactMap(\.stringValue) {
        let root = URL(fileURLWithPath: pool.workerRoot("compat")).resolvingSymlinksInPath().path
        for name in marker {
          let line = log.first { $0.hasPrefix(name + " ") }
          let path = line.map { String($0.dropFirst(name.count + 1)) } ?? ""
          #expect(path.hasPrefix(root + "/"), "\(context)\n\(name) is '\(path)', not inside \(root)")
        }
      }
      if let limit = expect["http_requests_for_path_at_most"]?.numberValue, let server {
        #expect(server.requestCount() <= Int(limit), "\(context)\n\(server.requestCount()) requests")
      }

      var finalView = view
      if let then = expect["then_cancel"]?.objectValue {
        #expect(pool.cli(["cancel", id]).status == 0)
        finalView = try pool.waitForFinal(id, timeout: 60)
        if let state = then["status"]?.stringValue {
          #expect(finalView.state.rawValue == state, "\(context)")
        }
        if let cleanup = then["cleanup"]?.stringValue { #expect(finalView.cleanup.state.rawValue == cleanup) }
        if then["process_gone"]?.boolValue == true { try expectNoProcess(of: id, pool: pool) }
      }
      if let cleanup = expect["cleanup"]?.stringValue {
        #expect(finalView.cleanup.state.rawValue == cleanup, "\(context)")
      }
      if let least = expect["cleanup_bytes_freed_at_least"]?.numberValue {
        #expect((finalView.cleanup.bytesFreed ?? 0) >= Int64(least), "\(context)")
      }
      if expect["workspace_gone"]?.boolValue == true {
        let path = pool.workerRoot("compat") + "/jobs/\(id)-\(finalView.attempt)"
        #expect(!FileManager.default.fileExists(atPath: path), "\(context)")
      }
      if expect["no_process_of_the_job_left"]?.boolValue == true { try expectNoProcess(of: id, pool: pool) }
      if expect["canary_file_still_there"]?.boolValue == true, let canary, let file = spec.canaryFile {
        #expect(
          FileManager.default.fileExists(atPath: canary.appendingPathComponent(file).path), "\(context)")
      }
      if expect["no_file_written_outside_workspace"]?.boolValue == true {
        #expect(snapshotOutside(pool) == outside, "\(context)\nfiles appeared outside the workspace")
        #expect(!FileManager.default.fileExists(atPath: "/etc/pinpool-escape"))
      }
    }
  }

  /// The bundle as the case ships it, with a variant's step replaced.
  private func prepareBundle(in directory: URL) throws -> URL {
    guard let variant else { return spec.folder }
    let copy = directory.appendingPathComponent("bundle")
    try FileManager.default.copyItem(at: spec.folder, to: copy)
    let entry = copy.appendingPathComponent(spec.entry)
    let document = try ScriptSource.parse(try String(contentsOf: entry, encoding: .utf8), file: spec.entry)
    var top = try #require(document.value.objectValue)
    var steps = try #require(top["run"]?.arrayValue)
    steps[variant.step - 1] = variant.with
    top["run"] = .array(steps)
    try JSONValue.object(top).serialized(pretty: true).write(to: entry, atomically: true, encoding: .utf8)
    return copy
  }

  private func checkLog(_ expect: JSONObject, log: [String], substitute: (String) -> String, context: String)
    throws
  {
    let text = log.joined(separator: "\n")
    var cursor = text.startIndex
    for item in expect["log_in_order"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
      let needle = substitute(item)
      guard let range = text.range(of: needle, range: cursor..<text.endIndex) else {
        Issue.record("\(context)\nmissing, in order: '\(needle)'")
        return
      }
      cursor = range.upperBound
    }
    for item in expect["log_absent"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
      #expect(!text.contains(substitute(item)), "\(context)\nunexpected '\(item)'")
    }
    for pattern in expect["log_regex"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
      #expect(
        log.contains { $0.range(of: pattern, options: .regularExpression) != nil },
        "\(context)\nno line matches \(pattern)")
    }
  }

  /// Every process a job starts carries `PINPOOL_JOB_ID` in its environment.
  private func expectNoProcess(of id: String, pool: Pool) throws {
    let marker = "PINPOOL_JOB_ID=\(id)\0"
    var survivors: [String] = []
    try pool.waitUntil("no process of job \(id) is left", timeout: 20) {
      survivors = []
      for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(pid) != nil {
        guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
        let workspaceMarker = "PINPOOL_WORKSPACE=\(pool.workerRoot("compat"))"
        let text = String(decoding: environ, as: UTF8.self)
        if text.contains(marker) && text.contains(workspaceMarker) {
          let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
          if !stat.contains(") Z ") { survivors.append(pid) }
        }
      }
      return survivors.isEmpty
    }
  }

  /// Files under the test's folder that are not the worker's or coordinator's own.
  private func snapshotOutside(_ pool: Pool) -> Set<String> {
    var files: Set<String> = []
    let root = pool.directory.path
    let workerRoot = pool.workerRoot("compat")
    if let walker = FileManager.default.enumerator(atPath: root) {
      for case let path as String in walker {
        let full = root + "/" + path
        if full.hasPrefix(workerRoot + "/jobs") || full.hasPrefix(workerRoot + "/cache")
          || full.hasPrefix(pool.dataDirectory)
          || full.hasPrefix(workerRoot + "/pids") || full.hasPrefix(workerRoot + "/spool")
          || path.hasSuffix(".log")
        {
          continue
        }
        files.insert(path)
      }
    }
    return files
  }
}

/// A loopback HTTP server (Python's http.server) serving one generated file, whose
/// request log tells how many times it was fetched.
final class HTTPFixture {
  let process: Process
  let base: String
  let sha256: String
  let path: String
  let logURL: URL

  init(directory: URL, path: String, bytes: Int, seed: Int) throws {
    let root = directory.appendingPathComponent("http")
    let file = root.appendingPathComponent(String(path.drop { $0 == "/" }))
    try FileManager.default.createDirectory(
      at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
    let body = Data((0..<bytes).map { UInt8(($0 * 31 + seed) % 256) })
    try body.write(to: file)
    sha256 = body.sha256Hex
    self.path = path
    let port = Pool.freePort()
    base = "http://127.0.0.1:\(port)"
    logURL = directory.appendingPathComponent("http.log")
    _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
    process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      "python3", "-u", "-m", "http.server", "\(port)", "--bind", "127.0.0.1", "--directory", root.path,
    ]
    let handle = try FileHandle(forWritingTo: logURL)
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(20)
    while Date() < deadline {
      if (try? Data(contentsOf: URL(string: base + "/")!)) != nil { return }
      usleep(50_000)
    }
    stop()
    throw PoolError("the test HTTP server did not start")
  }

  func requestCount() -> Int {
    let text = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
    return text.components(separatedBy: "\"GET \(path) ").count - 1
  }

  /// SIGKILL: a child of the test process may inherit a mask that blocks SIGTERM.
  func stop() {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
  }
}
