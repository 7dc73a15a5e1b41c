/// Static checks of a parsed script, for `pinpool validate` and before a job runs:
/// every problem found, each located by file, line and column.
public enum ScriptValidator {
  public static func problems(in script: Script) -> [String] {
    var problems: [String] = []
    for (index, step) in script.steps.enumerated() {
      let place = script.location(ofStep: index)?.description ?? script.file
      if !Script.methods.contains(step.method) {
        let near = Script.methods.sorted().min { distance($0, step.method) < distance($1, step.method) }
        problems.append(
          "\(place): step \(index + 1): unknown method '\(step.method)'"
            + (near.map { distance($0, step.method) <= 3 ? "; did you mean '\($0)'?" : "" } ?? ""))
      }
      var strings: [(JSONPath, String)] = []
      collect(step.params, at: ["params"], into: &strings)
      if let when = step.when { collect(when, at: ["when"], into: &strings) }
      for (path, text) in strings where Template.containsTemplate(text) {
        for error in Template.check(
          text, knownVariables: Template.standardVariables, knownFunctions: Template.standardFunctions)
        {
          let location = script.location(ofStep: index, path)?.description ?? place
          problems.append("\(location): step \(index + 1): \(error)")
        }
      }
    }
    return problems
  }

  private static func collect(_ value: JSONValue, at path: JSONPath, into out: inout [(JSONPath, String)]) {
    switch value {
    case .string(let s): out.append((path, s))
    case .array(let items):
      for (i, item) in items.enumerated() { collect(item, at: path + [.index(i)], into: &out) }
    case .object(let object):
      for (key, item) in object { collect(item, at: path + [.key(key)], into: &out) }
    default: break
    }
  }

  private static func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
      var previous = row[0]
      row[0] = i
      for j in 1...max(1, b.count) where !b.isEmpty {
        let current = row[j]
        row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
        previous = current
      }
    }
    return row[b.count]
  }
}
