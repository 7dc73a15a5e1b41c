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
    let uv = Executables.find("uv", in: runtimeBin)
    for venv in venvs {
      let python = venv + "/bin/python"
      guard FileManager.default.isExecutableFile(atPath: python) else { continue }
      var entry = JSONObject()
      entry["path"] = .string(
        venv.hasPrefix(workspace + "/") ? String(venv.dropFirst(workspace.count + 1)) : venv)
      let version = await capture(python, ["--version"], environment: environment)
      entry["python"] = .string(version.first?.replacingOccurrences(of: "Python ", with: "") ?? "unknown")
      let packages =
        if let uv {
          await capture(uv, ["pip", "freeze", "--python", python], environment: environment)
        } else {
          await capture(
            python, ["-m", "pip", "freeze", "--disable-pip-version-check"], environment: environment)
        }
      entry["packages"] = .array(packages.map(JSONValue.string))
      list.append(.object(entry))
    }
    record["venvs"] = .array(list)
    return .object(record)
  }

  /// Runs a short query and returns its stdout lines; a failure gives no lines.
  private static func capture(_ executable: String, _ arguments: [String], environment: [String: String])
    async
    -> [String]
  {
    guard
      case .finished(let status, let stdout, _) = await ToolRunner.capture(
        executable, arguments, environment: environment, timeout: .seconds(60)),
      status.isSuccess
    else { return [] }
    return stdout.split(separator: "\n").map(String.init)
  }
}
