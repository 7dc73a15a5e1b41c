import Foundation
import Testing

/// `pinpool validate` through the real binary: every problem, located, and a
/// non-zero exit on any.
struct ValidateTests {
  static var examples: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/examples")
  }

  @Test(arguments: ["seed-basic-app.json", "seed-hunyuan-video.json"])
  func seedExamplesValidateAsWritten(_ name: String) throws {
    let pool = try Pool()
    defer { pool.shutdown() }
    let path = Self.examples.appendingPathComponent(name).path
    #expect(FileManager.default.fileExists(atPath: path), "missing \(path)")
    let result = pool.cli(["validate", path])
    #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
  }

  @Test func everyProblemIsReportedWithItsLocation() throws {
    let pool = try Pool()
    defer { pool.shutdown() }
    let bad = try writeScript(
      """
      {
        "run": [
          { "method": "shell.runn", "params": { "message": "echo hi" } },
          { "method": "shell.run", "params": { "message": "echo {{ args.x " } },
          { "method": "log", "params": { "text": "{{ foo.bar }}" } }
        ]
      }
      """, name: "bad.json", in: pool.directory)
    let result = pool.cli(["validate", bad])
    #expect(result.status == 1)
    #expect(result.stdout.contains("bad.json:3:5: step 1: unknown method 'shell.runn'"))
    #expect(result.stdout.contains("bad.json:4:53: step 2: unterminated '{{'"))
    #expect(result.stdout.contains("bad.json:5:44: step 3: unknown variable 'foo'"))

    let noRun = try writeScript(#"{ "title": "x" }"#, name: "norun.json", in: pool.directory)
    let missing = pool.cli(["validate", noRun])
    #expect(missing.status == 1)
    #expect(missing.stdout.contains("norun.json:1:1: missing \"run\""))

    let function = try writeScript(
      "module.exports = async (kernel, info) => ({ run: [] })", name: "fn.js", in: pool.directory)
    let functionResult = pool.cli(["validate", function])
    #expect(functionResult.status == 1)
    #expect(functionResult.stdout.contains("fn.js:1:18"))
    #expect(functionResult.stdout.contains("object-literal modules"))
  }

  @Test func scriptStartTargetsAreFollowed() throws {
    let pool = try Pool()
    defer { pool.shutdown() }
    let folder = pool.directory.appendingPathComponent("app")
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("lib"), withIntermediateDirectories: true)
    _ = try writeScript(
      #"{ "run": [ { "method": "script.start", "params": { "uri": "lib/child.json" } }, { "method": "script.start", "params": { "uri": "lib/gone.json" } } ] }"#,
      name: "install.json", in: folder)
    _ = try writeScript(
      #"{ "run": [ { "method": "log", "params": { "text": "{{ nope }}" } } ] }"#, name: "lib/child.json",
      in: folder)
    let result = pool.cli(["validate", folder.path])
    #expect(result.status == 1)
    #expect(result.stdout.contains("lib/child.json:1:"))
    #expect(result.stdout.contains("unknown variable 'nope'"))
    #expect(result.stdout.contains("no script 'lib/gone.json'"))
  }
}
