import Foundation
import Shared
import Synchronization

extension ScriptExecutor {
  func perform(
    _ step: Script.Step, params: JSONValue, script: Script, folder: String, args: JSONValue,
    fail: (String, Int32?) -> StepFailure
  ) async throws -> StepResult {
    let object = params.objectValue ?? JSONObject()
    func confined(_ path: String, base: String? = nil, followFinal: Bool = true) throws -> String {
      do {
        return followFinal
          ? try context.workspace.confinement.resolve(path, relativeTo: base ?? folder)
          : try context.workspace.confinement.resolveWithoutFollowingFinalSymlink(
            path, relativeTo: base ?? folder)
      } catch {
        throw fail(error.description, nil)
      }
    }
    func string(_ key: String, required: Bool = true) throws -> String? {
      switch object[key] {
      case .string(let s)?: return s
      case .number(let n)?: return JSONValue.format(number: n)
      case nil, .null?:
        if required { throw fail("missing \"params.\(key)\"", nil) }
        return nil
      case let other?: throw fail("\"params.\(key)\" must be a string, got \(other.typeName)", nil)
      }
    }

    switch step.method {
    case "shell.run":
      return .value(
        try await shellRun(object, folder: folder, confined: { try confined($0, base: $1) }, fail: fail))

    case "local.set":
      for (key, value) in object { locals[key] = value }
      events.progress(.running, -1, stepCount, .object(locals))
      return .value(params)

    case "log":
      let text: String
      if let t = object["text"] ?? object["raw"] ?? object["json"] {
        text = t.stringValue ?? t.serialized()
      } else {
        text = params.stringValue ?? params.serialized()
      }
      for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        events.log(.stdout, String(line))
      }
      return .value(params)

    case "notify":
      let text = object["html"]?.stringValue ?? object["text"]?.stringValue ?? params.serialized()
      events.notify(text)
      events.log(.pinpool, "notify: \(text)")
      return .value(params)

    case "web.open":
      let uri = try string("uri") ?? ""
      events.notify("open \(uri)")
      events.log(.pinpool, "web.open: \(uri)")
      return .value(params)

    case "input":
      // Headless: the job's arguments are the answers; a form's defaults fill the rest.
      return .value(args)

    case "jump":
      if let id = object["id"] { return .jump(id, input: object["params"]) }
      if let index = object["index"] { return .jump(index, input: object["params"]) }
      throw fail("jump needs \"params.id\" or \"params.index\"", nil)

    case "script.return":
      return .returned(params)

    case "script.start":
      let uri = try string("uri")!
      let childPath = try confined(uri)
      let relative = String(childPath.dropFirst(context.workspace.root.count + 1))
      let child = try loadScript(relative)
      let childParams = object["params"] ?? .object(JSONObject())
      events.log(.pinpool, "script.start \(relative)")
      let returned = try await runScript(child, args: childParams, input: childParams, topLevel: false)
      return .value(returned ?? .null)

    case "script.stop":
      await stopDetached()
      return .value(params)

    case "fs.write":
      let path = try confined(try string("path")!)
      let data: Data
      if let json = object["json"] {
        data = Data(json.serialized(pretty: true).utf8)
      } else if let text = object["text"] {
        data = Data((text.stringValue ?? text.serialized()).utf8)
      } else {
        throw fail("fs.write needs \"params.text\" or \"params.json\"", nil)
      }
      try createParent(of: path, fail: fail)
      guard FileManager.default.createFile(atPath: path, contents: data) else {
        throw fail("cannot write \(path)", nil)
      }
      return .value(params)

    case "fs.read":
      let path = try confined(try string("path")!)
      guard let data = FileManager.default.contents(atPath: path) else {
        throw fail("cannot read \(path)", nil)
      }
      return .value(.string(String(decoding: data, as: UTF8.self)))

    case "fs.copy":
      let source = try confined(try string("src")!)
      let destination = try confined(try string("dest")!)
      try createParent(of: destination, fail: fail)
      do {
        if FileManager.default.fileExists(atPath: destination) {
          try FileManager.default.removeItem(atPath: destination)
        }
        try FileManager.default.copyItem(atPath: source, toPath: destination)
      } catch {
        throw fail("cannot copy: \(error.localizedDescription)", nil)
      }
      return .value(params)

    case "fs.rm":
      let path = try confined(try string("path")!, followFinal: false)
      guard path != context.workspace.root else { throw fail("refusing to remove the whole workspace", nil) }
      do {
        if FileManager.default.fileExists(atPath: path)
          || (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) != nil
        {
          _ = try WorkspaceCleanup.remove(path, diskFreeAt: context.workerRoot)
        }
      } catch {
        throw fail("cannot remove: \(error)", nil)
      }
      return .value(params)

    case "fs.link":
      let source = try confined(try string("src")!)
      let destination = try confined(try string("dest")!, followFinal: false)
      try createParent(of: destination, fail: fail)
      do {
        try FileManager.default.createSymbolicLink(atPath: destination, withDestinationPath: source)
      } catch {
        throw fail("cannot link: \(error.localizedDescription)", nil)
      }
      return .value(params)

    case "fs.download":
      let uriText = try string("uri")!
      guard let url = URL(string: uriText), let scheme = url.scheme?.lowercased(),
        scheme == "http" || scheme == "https"
      else { throw fail("\"params.uri\" must be an http(s) URL, got '\(uriText)'", nil) }
      let destination: String
      if let path = try string("path", required: false) {
        destination = try confined(path)
      } else {
        let dir = try confined(try string("dir", required: false) ?? ".")
        let name = url.lastPathComponent
        guard !name.isEmpty, name != "/" else {
          throw fail("cannot tell a file name from '\(uriText)'; give \"params.path\"", nil)
        }
        destination = try confined(name, base: dir)
      }
      try createParent(of: destination, fail: fail)
      let events = self.events
      do {
        let size = try await Downloader.download(from: url, to: destination) { events.log(.pinpool, $0) }
        return .value(.object(JSONObject([("path", .string(destination)), ("size", .number(Double(size)))])))
      } catch is CancellationError {
        throw CancellationError()
      } catch {
        throw fail("\(error)", nil)
      }

    case "hf.download":
      return .value(
        try await hfDownload(object, folder: folder, confined: { try confined($0, base: $1) }, fail: fail))

    default:
      if Script.methods.contains(step.method) {
        throw fail("method '\(step.method)' is not supported by this worker version", nil)
      }
      throw fail("unknown method '\(step.method)'", nil)
    }
  }

  /// `hf.download`: the Hugging Face CLI from the worker's runtime, with the step's
  /// params as its arguments (`_` holds the positional ones, other keys become
  /// `--key value`), run like a `shell.run` command so its output streams to the log.
  private func hfDownload(
    _ params: JSONObject, folder: String, confined: (String, String?) throws -> String,
    fail: (String, Int32?) -> StepFailure
  ) async throws -> JSONValue {
    let pathDirs = (context.environment["PATH"] ?? "").split(separator: ":").map(String.init)
    let tool = ["hf", "huggingface-cli"].first { Executables.find($0, in: pathDirs) != nil }
    guard let tool else {
      throw fail(
        "hf.download needs the Hugging Face CLI (hf) in the worker's runtime; none is on the job's PATH", nil)
    }
    func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
    var words = [tool, "download"]
    for item in params["_"]?.arrayValue ?? [] {
      guard let text = item.stringValue else { continue }
      words.append(quote(text))
    }
    for (key, value) in params where key != "_" && key != "path" {
      for item in value.arrayValue ?? [value] {
        switch item {
        case .bool(true): words.append("--\(key)")
        case .bool(false), .null: continue
        default: words += ["--\(key)", quote(item.stringValue ?? item.serialized())]
        }
      }
    }
    var shellParams = JSONObject()
    shellParams["message"] = .string(words.joined(separator: " "))
    shellParams["path"] = params["path"] ?? .string(".")
    return try await shellRun(shellParams, folder: folder, confined: confined, fail: fail)
  }

  private func createParent(of path: String, fail: (String, Int32?) -> StepFailure) throws {
    do {
      try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    } catch {
      throw fail("cannot create the folder for \(path): \(error.localizedDescription)", nil)
    }
  }

  /// `shell.run`: each command in order in `path`, with the venv and `env` applied,
  /// stopping at the first failure. Its result (`{stdout, event}`) is the next input.
  private func shellRun(
    _ params: JSONObject, folder: String, confined: (String, String?) throws -> String,
    fail: (String, Int32?) -> StepFailure
  ) async throws -> JSONValue {
    // When a step has `script`, that is the command and `message` only its label.
    let commandValue = params["script"] ?? params["message"]
    var commands: [String]
    switch commandValue {
    case .string(let s)?: commands = [s]
    case .array(let items)?:
      commands = items.compactMap { $0.stringValue ?? ($0.isNull ? nil : $0.serialized()) }
    case nil: throw fail("shell.run needs \"params.message\" (a command or a list of commands)", nil)
    case let other?: throw fail("\"params.message\" must be a string or a list, got \(other.typeName)", nil)
    }
    commands = commands.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }

    let workingDirectory = try confined(params["path"]?.stringValue ?? ".", folder)
    do {
      try FileManager.default.createDirectory(atPath: workingDirectory, withIntermediateDirectories: true)
    } catch {
      throw fail("cannot create \"path\" \(workingDirectory): \(error.localizedDescription)", nil)
    }
    var environment = context.environment
    if case .object(let stepEnv)? = params["env"] {
      var values: [String: JSONValue] = [:]
      for (key, value) in stepEnv { values[key] = value }
      environment = JobEnvironment.applying(stepEnv: values, to: environment)
    }
    if let venv = params["venv"]?.stringValue, !venv.isEmpty {
      let venvPath = try confined(venv, workingDirectory)
      let events = self.events
      do {
        _ = try await VenvBuilder.ensure(
          venvPath: venvPath, runtimeBin: context.runtimeBin, environment: environment,
          log: { events.log(.pinpool, $0) })
      } catch {
        throw fail("cannot create the venv at \(venv): \(error)", nil)
      }
      environment = VenvBuilder.activate(venvPath: venvPath, env: environment)
      if !venvs.contains(venvPath) { venvs.append(venvPath) }
    }

    struct Handler {
      var regex: JSRegex
      var verdict: LineVerdict
    }
    var handlers: [Handler] = []
    for item in params["on"]?.arrayValue ?? [] {
      guard case .object(let handler) = item, let event = handler["event"]?.stringValue else { continue }
      let regex: JSRegex
      do { regex = try JSRegex(literal: event) } catch { throw fail("bad \"on\" event: \(error)", nil) }
      let verdict: LineVerdict
      if handler["done"]?.boolValue == true {
        verdict = .detach
      } else if handler["kill"]?.boolValue == true {
        verdict = .kill
      } else if handler["break"]?.boolValue == true {
        verdict = .fail("output matched \(event)")
      } else {
        verdict = .continue_
      }
      handlers.append(Handler(regex: regex, verdict: verdict))
    }

    let capture = OutputCapture()
    let events = self.events
    let finalHandlers = handlers
    for command in commands {
      try Task.checkCancellation()
      let request = ShellCommandRequest(
        command: command, workingDirectory: workingDirectory, environment: environment)
      let outcome: ShellOutcome
      do {
        outcome = try await ShellProcess.run(request, options: context.shellOptions) { stream, line in
          events.processOutput(stream == .stdout ? .stdout : .stderr, line)
          capture.append(line.bytes)
          // Only `on` handlers need the line as text.
          guard !finalHandlers.isEmpty else { return .continue_ }
          let text = line.text
          for handler in finalHandlers {
            guard let match = handler.regex.firstMatch(in: text) else { continue }
            if case .continue_ = handler.verdict { continue }
            capture.setEvent(match, line: text)
            return handler.verdict
          }
          return .continue_
        }
      } catch {
        throw fail("cannot start `\(command)`: \(error)", nil)
      }
      switch outcome {
      case .exited(let code):
        if code != 0 { throw fail("command exited with code \(code): \(command)", code) }
      case .signalled(let signal):
        throw fail("command was killed by signal \(signal): \(command)", 128 + signal)
      case .detached(let process):
        detached.append(process)
        return capture.result
      case .killedByHandler:
        return capture.result
      case .failedByHandler(let reason):
        throw fail("\(reason) (line: \(capture.eventLine ?? ""))", nil)
      case .cancelled:
        throw CancellationError()
      }
    }
    return capture.result
  }
}

/// Collects a step's output tail and the `on` match for its result; written from
/// the process's reader thread, read after it is done.
private final class OutputCapture: Sendable {
  /// The result keeps the last 64 KiB of output, in whole lines.
  private static let tailLimit = 64 * 1024

  private struct State {
    /// The latest lines, each ended by a newline; trimmed to the limit only now and
    /// then, so a line costs a copy and no bookkeeping.
    var tail: [UInt8] = []
    var event: [String?]?
    var eventLine: String?
  }

  /// A `Mutex` rather than a lock beside stored properties: the pipe reader appends
  /// every line, and stored properties would add a dynamic exclusivity check to each.
  private let state = Mutex(State())

  var eventLine: String? { state.withLock { $0.eventLine } }

  func append(_ line: UnsafeBufferPointer<UInt8>) {
    state.withLock { state in
      state.tail.append(contentsOf: line)
      state.tail.append(0x0A)
      // Kept: the last line and twice the limit before it, so the cut (mid-line) is
      // always beyond what `lastLines` returns; trimmed rarely, so a chatty job's output
      // is not moved around more than once.
      if state.tail.count > 64 * Self.tailLimit + line.count {
        state.tail.removeFirst(state.tail.count - 2 * Self.tailLimit - line.count - 1)
      }
    }
  }

  func setEvent(_ match: [String?], line: String) {
    state.withLock { state in
      if state.event == nil {
        state.event = match
        state.eventLine = line
      }
    }
  }

  var result: JSONValue {
    state.withLock { state in
      var object = JSONObject()
      object["stdout"] = .string(String(decoding: Self.lastLines(state.tail), as: UTF8.self))
      object["event"] = state.event.map { .array($0.map { $0.map(JSONValue.string) ?? .null }) } ?? .null
      return .object(object)
    }
  }

  /// The whole lines in the last `tailLimit` bytes (at least the last line, however long),
  /// joined by newlines, without the final one.
  static func lastLines(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
    var text = bytes[...]
    if text.last == 0x0A { text = text.dropLast() }
    guard text.count > tailLimit else { return text }
    let lastLineStart = (text.lastIndex(of: 0x0A) ?? text.startIndex - 1) + 1
    let from = min(text.endIndex - tailLimit, lastLineStart)
    // Start after a newline, so no line is cut, unless the last line alone is longer.
    if from > text.startIndex, text[from - 1] != 0x0A, let newline = text[from...].firstIndex(of: 0x0A),
      newline < lastLineStart
    {
      return text[(newline + 1)...]
    }
    return text[from...]
  }
}
