import Foundation
import Shared

/// The reproducibility record of a job: which runtime tools it had and, for each venv
/// it built, the Python version and the exact packages (`uv pip freeze`), so a
/// teammate can rebuild the environment that produced a render.
enum EnvironmentRecord {
  static func describe(
    venvs: [String], workspace: String, runtimeTools: JSONValue, runtimeBin: [String],
    environment: [String: String]
  ) async -> JSONValue {
    var record = JSONObject()
    record["runtime"] = runtimeTools
    var list: [JSONValue] = []
    let uv = runtimeBin.map { $0 + "/uv" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    for venv in venvs {
      let python = venv + "/bin/python"
      guard FileManager.default.isExecutableFile(atPath: python) else { continue }
      var entry = JSONObject()
      entry["path"] = .string(
        venv.hasPrefix(workspace + "/") ? String(venv.dropFirst(workspace.count + 1)) : venv)
      let version = await capture("'\(python)' --version", environment: environment, in: workspace)
      entry["python"] = .string(version.first?.replacingOccurrences(of: "Python ", with: "") ?? "unknown")
      let freeze =
        uv.map { "'\($0)' pip freeze --python '\(python)'" }
        ?? "'\(python)' -m pip freeze --disable-pip-version-check"
      entry["packages"] = .array(
        await capture(freeze, environment: environment, in: workspace).map(JSONValue.string))
      list.append(.object(entry))
    }
    record["venvs"] = .array(list)
    return .object(record)
  }

  /// Runs a short command and returns its stdout lines; errors give no lines.
  private static func capture(_ command: String, environment: [String: String], in directory: String) async
    -> [String]
  {
    let lines = LineCollector()
    let request = ShellCommandRequest(command: command, workingDirectory: directory, environment: environment)
    let outcome = try? await ShellProcess.run(request, options: ShellOptions(terminationGrace: .seconds(2))) {
      stream, line in
      if stream == .stdout { lines.append(line) }
      return .continue_
    }
    guard case .exited(0)? = outcome else { return [] }
    return lines.lines
  }
}

private final class LineCollector: @unchecked Sendable {
  private let lock = NSLock()
  private var storage: [String] = []
  func append(_ line: String) {
    lock.lock()
    storage.append(line)
    lock.unlock()
  }
  var lines: [String] {
    lock.lock()
    defer { lock.unlock() }
    return storage
  }
}
