import ArgumentParser
import Foundation
import Shared

struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate", abstract: "Parse and check a bundle; print every problem with its location.",
    discussion: manual(
      """
      Checks every script reachable from the entry through script.start: syntax, the "run" list,
      method names, and the syntax and variables of every {{ template }}. Each problem is one
      line with file:line:col. Needs no coordinator.
      """,
      examples: ["pinpool validate render.json", "pinpool validate ./my-app --entry start.json --json"],
      exit: [.success, .failure, .usage]))
  @Argument(help: "A script file or a folder.", completion: .file()) var bundle: String
  @Option(help: "The script to start inside a folder bundle.") var entry: String?
  @Flag(help: "Print the problems as a JSON array.") var json = false

  func run() throws {
    let loaded: LoadedBundle
    do {
      loaded = try BundleLoader.load(bundle, entry: entry)
    } catch {
      if json { printJSON(["\(error)"]) } else { print("\(error)") }
      throw ExitCode(1)
    }
    let report = BundleValidation.check(loaded)
    if json {
      printJSON(report.problems)
    } else if report.problems.isEmpty {
      let n = report.scriptsChecked
      print("ok: \(n) script\(n == 1 ? "" : "s") checked, no problems")
    } else {
      for problem in report.problems { print(problem) }
      print("\(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")
    }
    if !report.problems.isEmpty { throw ExitCode(1) }
  }
}
