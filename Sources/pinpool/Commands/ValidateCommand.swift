import ArgumentParser
import Foundation
import Shared

struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate", abstract: "Parse and check a bundle; print every problem with its location.",
    discussion: """
      Checks every script reachable from the entry through script.start: syntax, the "run" list,
      method names, and the syntax and variables of every {{ template }}.
      Exit status: 0 when no problem is found, 1 otherwise.
      Example: pinpool validate ./my-app --entry start.json
      """)
  @Argument(help: "A script file or a folder.") var bundle: String
  @Option(help: "The script to start inside a folder bundle.") var entry: String?
  @Flag(help: "Print the problems as a JSON array.") var json = false

  func run() throws {
    var problems: [String] = []
    let loaded: LoadedBundle
    do {
      loaded = try BundleLoader.load(bundle, entry: entry)
    } catch {
      if json { printJSON([String(describing: error)]) } else { print("\(error)") }
      throw ExitCode(1)
    }
    var seen: Set<String> = []
    var pending = [(loaded.entry, loaded.script as Script?)]
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
      for step in script.steps where step.method == "script.start" {
        guard let uri = step.params["uri"]?.stringValue, !Template.containsTemplate(uri) else { continue }
        let folder = (path as NSString).deletingLastPathComponent
        let target = ((folder.isEmpty ? uri : folder + "/" + uri) as NSString).standardizingPath
        if loaded.bundle.file(target) == nil {
          let location = script.location(
            ofStep: script.steps.firstIndex { $0.path == step.path }!, ["params", "uri"])
          problems.append("\(location?.description ?? path): script.start: no script '\(uri)' in the bundle")
        } else {
          pending.append((target, nil))
        }
      }
    }
    if json {
      printJSON(problems)
    } else if problems.isEmpty {
      print("ok: \(seen.count) script\(seen.count == 1 ? "" : "s") checked, no problems")
    } else {
      for problem in problems { print(problem) }
      print("\(problems.count) problem\(problems.count == 1 ? "" : "s")")
    }
    if !problems.isEmpty { throw ExitCode(1) }
  }
}
