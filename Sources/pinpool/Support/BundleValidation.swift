import Foundation
import Shared

/// Checks every script reachable from a bundle's entry through `script.start`; shared
/// by `validate` and `submit`, so a mistake is caught before a job is queued.
enum BundleValidation {
  struct Report {
    var problems: [String]
    var scriptsChecked: Int
  }

  static func check(_ loaded: LoadedBundle) -> Report {
    var problems: [String] = []
    var seen: Set<String> = []
    var pending: [(String, Script?)] = [(loaded.entry, loaded.script)]
    while let (path, preloaded) = pending.popLast() {
      guard seen.insert(path).inserted else { continue }
      let script: Script
      if let preloaded {
        script = preloaded
      } else {
        guard let file = loaded.bundle.file(path) else { continue }
        do {
          script = try Script.load(text: String(decoding: file.data, as: UTF8.self), file: path)
        } catch {
          problems.append(error.description)
          continue
        }
      }
      problems += ScriptValidator.problems(in: script)
      for (index, step) in script.steps.enumerated() where step.method == "script.start" {
        guard let uri = step.params["uri"]?.stringValue, !Template.containsTemplate(uri) else { continue }
        let folder = (path as NSString).deletingLastPathComponent
        let target = ((folder.isEmpty ? uri : folder + "/" + uri) as NSString).standardizingPath
        if target.hasPrefix("../") || target.hasPrefix("/") {
          let location = script.location(ofStep: index, ["params", "uri"])
          problems.append(
            "\(location?.description ?? path): step \(index + 1): script.start: '\(uri)' is outside the bundle"
          )
        } else if loaded.bundle.file(target) == nil {
          let location = script.location(ofStep: index, ["params", "uri"])
          problems.append(
            "\(location?.description ?? path): step \(index + 1): script.start: no script '\(uri)' in the bundle"
          )
        } else {
          pending.append((target, nil))
        }
      }
    }
    return Report(problems: problems, scriptsChecked: seen.count)
  }
}
