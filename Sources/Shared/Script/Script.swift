/// A parsed Pinokio script: its steps and the pool extensions beside them.
public struct Script: Sendable {
  public struct Step: Sendable {
    public var method: String
    public var params: JSONValue
    public var when: JSONValue?
    public var id: String?
    public var next: JSONValue?
    /// Where the step sits in the file, for error messages.
    public var path: JSONPath
  }

  public var file: String
  public var steps: [Step]
  public var daemon: Bool
  /// The script's other top-level keys, visible to templates as `self`.
  public var selfObject: JSONObject
  public var resources: JSONValue?
  public var artifacts: [String]
  public var document: ParsedScriptDocument

  /// Methods the worker knows. `input` and `web.open` have headless meanings.
  public static let methods: Set<String> = [
    "shell.run", "script.start", "script.stop", "script.return", "local.set", "fs.write", "fs.read",
    "fs.copy",
    "fs.rm", "fs.download", "fs.link", "hf.download", "log", "notify", "jump", "input", "web.open",
  ]

  public init(document: ParsedScriptDocument) throws(ScriptError) {
    self.document = document
    file = document.file
    guard case .object(let top) = document.value else {
      throw ScriptError(
        file: file, location: document.location(of: []), stepNumber: nil,
        message: "a script is an object with a \"run\" list, got \(document.value.typeName)")
    }
    guard let run = top["run"] else {
      throw ScriptError(
        file: file, location: document.location(of: []), stepNumber: nil,
        message: "missing \"run\": a script needs a list of steps")
    }
    guard case .array(let items) = run else {
      throw ScriptError(
        file: file, location: document.location(of: ["run"]), stepNumber: nil,
        message: "\"run\" must be a list of steps, got \(run.typeName)")
    }
    var steps: [Step] = []
    for (index, item) in items.enumerated() {
      let path: JSONPath = ["run", .index(index)]
      guard case .object(let object) = item else {
        throw ScriptError(
          file: file, location: document.location(of: path), stepNumber: index + 1,
          message: "a step must be an object with a \"method\", got \(item.typeName)")
      }
      guard let method = object["method"]?.stringValue else {
        throw ScriptError(
          file: file, location: document.location(of: path), stepNumber: index + 1,
          message: "missing \"method\" (a string such as \"shell.run\")")
      }
      let id: String?
      switch object["id"] {
      case nil, .null?: id = nil
      case .string(let s)?: id = s
      case .number(let n)?: id = JSONValue.format(number: n)
      case let other?:
        throw ScriptError(
          file: file, location: document.location(of: path + ["id"]), stepNumber: index + 1,
          message: "\"id\" must be a string, got \(other.typeName)")
      }
      steps.append(
        Step(
          method: method, params: object["params"] ?? .object(JSONObject()), when: object["when"], id: id,
          next: object.keys.contains("next") ? (object["next"] ?? .null) : nil, path: path))
    }
    self.steps = steps
    daemon = top["daemon"]?.boolValue ?? false
    var rest = top
    rest["run"] = nil
    selfObject = rest
    resources = top["resources"]
    artifacts = []
    switch top["artifacts"] {
    case nil, .null?: break
    case .array(let items)?:
      for (index, item) in items.enumerated() {
        let path: JSONPath = ["artifacts", .index(index)]
        guard let glob = item.stringValue else {
          throw ScriptError(
            file: file, location: document.location(of: path), stepNumber: nil,
            message: "\"artifacts\" lists globs (strings), got \(item.typeName)")
        }
        if let problem = ArtifactGlob.problem(glob) {
          throw ScriptError(
            file: file, location: document.location(of: path), stepNumber: nil,
            message: "artifact glob '\(glob)' is refused: \(problem)")
        }
        artifacts.append(glob)
      }
    case let other?:
      throw ScriptError(
        file: file, location: document.location(of: ["artifacts"]), stepNumber: nil,
        message: "\"artifacts\" must be a list of globs such as [\"outputs/**/*.mp4\"], got \(other.typeName)"
      )
    }
  }

  public static func load(text: String, file: String) throws(ScriptError) -> Script {
    do {
      return try Script(document: ScriptSource.parse(text, file: file))
    } catch let error as ScriptLoadError {
      throw ScriptError(
        file: file, location: error.location, stepNumber: nil,
        message: error.message + (error.path.map { " (at \($0))" } ?? ""))
    } catch let error as ScriptError {
      throw error
    } catch {
      throw ScriptError(file: file, location: nil, stepNumber: nil, message: "\(error)")
    }
  }

  public func location(ofStep index: Int, _ suffix: JSONPath = []) -> SourceLocation? {
    document.location(of: steps[index].path + suffix) ?? document.location(of: steps[index].path)
  }

  public func stepIndex(forID id: String) -> Int? {
    steps.firstIndex { $0.id == id }
  }
}

/// A problem with a script, located as precisely as known: file, line and column,
/// and the 1-based step number people count in.
public struct ScriptError: Error, CustomStringConvertible, Sendable {
  public var file: String
  public var location: SourceLocation?
  public var stepNumber: Int?
  public var message: String

  public init(file: String, location: SourceLocation?, stepNumber: Int?, message: String) {
    self.file = file
    self.location = location
    self.stepNumber = stepNumber
    self.message = message
  }

  public var description: String {
    let place = location?.description ?? file
    return "\(place): " + (stepNumber.map { "step \($0): " } ?? "") + message
  }
}

extension JSONPath {
  static func + (lhs: JSONPath, rhs: JSONPath) -> JSONPath {
    JSONPath(lhs.components + rhs.components)
  }
}
