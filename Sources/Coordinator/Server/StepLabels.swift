import Foundation
import Shared

/// Labels for the top-level steps of a job's entry script, for the step timeline of
/// `pinpool status`. A label names what a step does without echoing its command
/// (commands often carry tokens): the method, the step's `id`, and for `script.start`
/// and `script.stop` the script it names.
enum StepLabels {
  static func labels(bundle: Data, entry: String) -> [String]? {
    guard let decoded = try? JobBundle(decoding: bundle), let file = decoded.file(entry),
      let text = String(data: file.data, encoding: .utf8),
      let script = try? Script.load(text: text, file: entry)
    else { return nil }
    return script.steps.map(label)
  }

  static func label(_ step: Script.Step) -> String {
    var label = step.method
    if step.method == "script.start" || step.method == "script.stop",
      let uri = step.params["uri"]?.stringValue
    {
      label += " " + uri
    }
    if let id = step.id { label += " (\(id))" }
    return label
  }
}
