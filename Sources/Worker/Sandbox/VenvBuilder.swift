import Foundation
import Subprocess
import Synchronization

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

public struct VenvError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// Creates the Python virtual environments scripts name with `venv`. uv from the
/// worker's private runtime is preferred: it builds a venv in milliseconds from its
/// cache and never touches the host's Python install; `python3 -m venv` is the fallback
/// for workers without a runtime.
public enum VenvBuilder {
  /// Makes sure a venv exists at `venvPath` and returns its `bin` folder.
  ///
  /// - Parameters:
  ///   - environment: the job's environment; the tool runs with exactly this.
  ///   - log: receives every line the tool prints (stdout and stderr), for the job log.
  public static func ensure(
    venvPath: String, runtimeBin: [String], environment: [String: String],
    log: @escaping @Sendable (String) -> Void
  ) async throws -> String {
    let bin = venvPath + "/bin"
    if FileManager.default.isExecutableFile(atPath: bin + "/python") { return bin }

    let searchPath = runtimeBin + (environment["PATH"] ?? "").split(separator: ":").map(String.init)
    let executable: String
    var arguments: [String]
    if let uv = Executables.find("uv", in: runtimeBin) {
      executable = uv
      arguments = ["venv", "--seed"]
      // A folder that exists but holds no working venv (an interrupted earlier step).
      if FileManager.default.fileExists(atPath: venvPath) { arguments.append("--allow-existing") }
      arguments.append(venvPath)
    } else if let python = Executables.find("python3", in: searchPath) {
      log(
        "warning: uv is not available in the worker runtime; creating the venv with python3 -m venv (slower)")
      executable = python
      arguments = ["-m", "venv", venvPath]
    } else {
      throw VenvError(
        "cannot create the venv '\(venvPath)': neither uv (in \(runtimeBin.joined(separator: ":"))) nor python3"
          + " (in \(searchPath.joined(separator: ":"))) was found")
    }

    let tail = VenvOutputTail(limit: 20)
    let logLine: @Sendable (String) -> Void = { line in
      tail.append(line)
      log(line)
    }
    let command = ([executable] + arguments).joined(separator: " ")
    let status: TerminationStatus
    do {
      status = try await ToolRunner.stream(executable, arguments, environment: environment, log: logLine)
    } catch is CancellationError {
      throw CancellationError()
    } catch {
      try Task.checkCancellation()
      throw VenvError("cannot run '\(command)': \(error)\(tail.suffix)")
    }
    guard status.isSuccess else {
      throw VenvError("creating the venv failed: '\(command)' \(status)\(tail.suffix)")
    }
    guard FileManager.default.isExecutableFile(atPath: bin + "/python") else {
      throw VenvError("'\(command)' succeeded but '\(bin)/python' does not exist\(tail.suffix)")
    }
    return bin
  }

  /// The environment of a process running "inside" the venv, as `activate` would make it.
  public static func activate(venvPath: String, env: [String: String]) -> [String: String] {
    var result = env
    result["VIRTUAL_ENV"] = venvPath
    let bin = venvPath + "/bin"
    if let path = env["PATH"], !path.isEmpty {
      result["PATH"] = bin + ":" + path
    } else {
      result["PATH"] = bin
    }
    // PYTHONHOME would point the venv's interpreter at another install's stdlib.
    result["PYTHONHOME"] = nil
    return result
  }
}

/// The last lines a tool printed, quoted in errors so a failure explains itself.
final class VenvOutputTail: Sendable {
  private let lines = Mutex<[String]>([])
  private let limit: Int

  init(limit: Int) { self.limit = limit }

  func append(_ line: String) {
    lines.withLock {
      $0.append(line)
      if $0.count > limit { $0.removeFirst($0.count - limit) }
    }
  }

  /// `"; last output:\n…"`, or empty when the tool printed nothing.
  var suffix: String {
    let text = lines.withLock { $0 }
    return text.isEmpty ? "" : "; last output:\n" + text.joined(separator: "\n")
  }
}
