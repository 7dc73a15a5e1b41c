import Foundation

/// One tool the private runtime exposes to jobs.
public struct RuntimeTool: Sendable, Codable, Hashable {
  public var name: String
  /// What the tool says about itself; nil when it could not be asked (the tool is still
  /// exposed, because a job may not need the broken one).
  public var version: String?
  /// Where jobs find it: an entry in the runtime's bin folder.
  public var path: String

  public init(name: String, version: String?, path: String) {
    self.name = name
    self.version = version
    self.path = path
  }
}

/// What `pinpool worker --runtime-status` shows and what a job's report records, so a
/// teammate can see which tool versions produced a result.
public struct RuntimeStatus: Sendable, Codable, Hashable {
  public var installed: Bool
  public var root: String
  public var bin: String
  public var tools: [RuntimeTool]
  /// The versions this worker wants; an install made with other pins is replaced on next need.
  public var pins: [String: String]
  /// Why the runtime is not usable as it stands, worded for an operator; nil when it is.
  public var problem: String?

  public init(
    installed: Bool, root: String, bin: String, tools: [RuntimeTool], pins: [String: String],
    problem: String?
  ) {
    self.installed = installed
    self.root = root
    self.bin = bin
    self.tools = tools
    self.pins = pins
    self.problem = problem
  }
}

/// Written last, after every file of an install is in place, so its presence is what
/// separates a finished install from one a crash or a kill interrupted.
struct RuntimeManifest: Codable, Sendable, Equatable {
  /// Bumped when the runtime's layout changes, so older installs are redone rather than
  /// trusted.
  static let currentLayout = 1

  var layout: Int
  var pins: [String: String]
  var tools: [RuntimeTool]
  /// The host interpreter the venv was made from, for diagnosing a broken runtime.
  var python: String
  var installedAt: Date

  init(
    layout: Int = RuntimeManifest.currentLayout, pins: [String: String], tools: [RuntimeTool],
    python: String, installedAt: Date = Date()
  ) {
    self.layout = layout
    self.pins = pins
    self.tools = tools
    self.python = python
    self.installedAt = installedAt
  }

  /// Whether this install is the one `pins` asks for; anything else is replaced.
  func matches(pins wanted: [String: String]) -> Bool {
    layout == Self.currentLayout && pins == wanted
  }

  /// Tools the manifest promises that are no longer runnable (deleted, or a link whose
  /// target went away).
  func missingTools() -> [RuntimeTool] {
    tools.filter { !FileManager.default.isExecutableFile(atPath: $0.path) }
  }

  /// Nil when the file is absent or unreadable: both mean "not installed", and an
  /// unreadable manifest is redone rather than trusted.
  static func read(from path: String) -> RuntimeManifest? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return try? decoder.decode(RuntimeManifest.self, from: data)
  }

  func write(to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    // Atomic, so a reader never sees half a manifest and takes it for a finished install.
    try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
  }
}
