import Foundation
import Testing

@testable import Shared

/// The `shared/` folder beside the checkout, where CI keeps the corpus and examples.
private let sharedRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("shared")

private func load(_ text: String, file: String = "test.json") throws(ScriptLoadError) -> ParsedScriptDocument
{
  try ScriptSource.parse(text, file: file)
}

private func loadError(_ text: String, file: String = "test.json") -> ScriptLoadError? {
  do throws(ScriptLoadError) {
    _ = try ScriptSource.parse(text, file: file)
    return nil
  } catch {
    return error
  }
}

@Suite struct ScriptSourceTests {
  @Test func examplesParseWithLastDuplicateWinning() throws {
    let folder = sharedRoot.appendingPathComponent("examples")
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter {
      $0.hasSuffix(".json")
    }
    #expect(files.count >= 2, "expected the examples in \(folder.path)")
    for name in files {
      let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
      let document = try load(text, file: name)
      let steps = try #require(document.value["run"]?.arrayValue)
      #expect(!steps.isEmpty)
      #expect(document.format == .json)
      for step in steps {
        #expect(step["method"] == "shell.run")
      }
    }
    let basic = try String(
      contentsOf: folder.appendingPathComponent("seed-basic-app.json"), encoding: .utf8)
    let document = try load(basic, file: "seed-basic-app.json")
    let params = try #require(document.value[path: ["run", 0, "params"]]?.objectValue)
    #expect(params["message"] == ["pip install -r requirements.txt", "npm install"])
    // The duplicate keeps the first key's position, as JavaScript objects do.
    #expect(params.keys == ["message", "venv", "path"])
    #expect(document.value[path: ["run", 1, "params", "script"]] == "python main.py")
    // The location names the winning (second) "message" value.
    let location = try #require(document.location(of: ["run", 0, "params", "message"]))
    #expect(location.line == 10)
    #expect(location.column == 20)
    #expect(location.description == "seed-basic-app.json:10:20")
  }

  @Test func everyCompatCaseScriptParses() throws {
    let cases = sharedRoot.appendingPathComponent("compat/cases")
    var isDirectory: ObjCBool = false
    #expect(
      FileManager.default.fileExists(atPath: cases.path, isDirectory: &isDirectory) && isDirectory.boolValue,
      "compat cases missing at \(cases.path)")
    let enumerator = try #require(FileManager.default.enumerator(atPath: cases.path))
    var scripts = 0
    for case let relative as String in enumerator
    where relative.hasSuffix(".json") || relative.hasSuffix(".js") {
      let text = try String(contentsOf: cases.appendingPathComponent(relative), encoding: .utf8)
      let document: ParsedScriptDocument
      do {
        document = try load(text, file: relative)
      } catch {
        Issue.record("\(error)")
        continue
      }
      if !relative.hasSuffix("case.json") {
        scripts += 1
        let steps = try #require(document.value["run"]?.arrayValue, "\(relative) has no run array")
        #expect(!steps.isEmpty)
        for index in steps.indices {
          #expect(document.location(of: ["run", .index(index)]) != nil)
        }
      }
    }
    #expect(scripts >= 14, "found only \(scripts) scripts under \(cases.path)")
  }

  @Test func c01DuplicateMessageAndComments() throws {
    let url = sharedRoot.appendingPathComponent("compat/cases/c01-jsonc-duplicate-keys/pinokio.json")
    let document = try load(String(contentsOf: url, encoding: .utf8), file: "pinokio.json")
    #expect(
      document.value[path: ["run", 0, "params", "message"]]
        == ["echo C01-STEP1-A", "", "echo C01-STEP1-B > marker.txt"])
    #expect(document.value[path: ["run", 1, "params", "script"]] == "cat marker.txt")
  }

  @Test func c02CommonJSObjectLiteral() throws {
    let url = sharedRoot.appendingPathComponent("compat/cases/c02-js-object-literal/install.js")
    let document = try load(String(contentsOf: url, encoding: .utf8), file: "install.js")
    #expect(document.format == .commonJS)
    let expected: JSONValue = [
      "run": [
        [
          "method": "shell.run",
          "params": ["path": "app", "message": ["echo C02-FIRST", "echo \"C02-SECOND\""]],
        ],
        ["method": "fs.write", "params": ["path": "app/config.json", "json": ["name": "c02", "size": 3]]],
        ["method": "shell.run", "params": ["path": "app", "message": "cat config.json"]],
      ]
    ]
    #expect(document.value == expected)
    let location = try #require(document.location(of: ["run", 1]))
    #expect(location.line == 15)
    #expect(location.column == 5)
  }

  @Test func commonJSLiterals() throws {
    let text = """
      'use strict';
      /* header */ module.exports = {
        a: 'it\\'s', "b": "tab\\tnew\\nline \\u00e9 \\x41 \\u{1F600}", c: -1.5e3, d: 0x1F, e: .5,
        f: undefined, g: [1, undefined, null, true, false,], h: `plain`, $i_j: 1_000, 7: 'seven',
        k: { 'quoted key': +2 },
      };  // trailing comment
      """
    let document = try load(text, file: "x.js")
    let object = try #require(document.value.objectValue)
    #expect(object["a"] == "it's")
    #expect(object["b"] == "tab\tnew\nline é A 😀")
    #expect(object["c"] == -1500)
    #expect(object["d"] == 31)
    #expect(object["e"] == 0.5)
    #expect(object["f"] == nil)
    #expect(object["g"] == [1, .null, .null, true, false])
    #expect(object["h"] == "plain")
    #expect(object["$i_j"] == 1000)
    #expect(object["7"] == "seven")
    #expect(document.value[path: ["k", "quoted key"]] == 2)
    #expect(object.keys == ["a", "b", "c", "d", "e", "g", "h", "$i_j", "7", "k"])
  }

  @Test func jsonWithCommentsAndTrailingCommas() throws {
    let text = """
      // leading
      { /* a */ "a": [1, 2, ], "b": {"c": "\\u0041\\ud83d\\ude00\\/"}, "a": 3, } // end
      """
    let document = try load(text)
    #expect(document.value == ["a": 3, "b": ["c": "A😀/"]])
    #expect(document.value.objectValue?.keys == ["a", "b"])
    #expect(document.location(of: ["a"])?.column == 67)
    #expect(document.location(of: ["a", 0]) == nil)
    #expect(document.location(of: .root)?.line == 2)
  }

  @Test(arguments: [
    ("{\n  \"a\": 1\n  \"b\": 2\n}", 3, 3, "expected ',' or '}' after object member", "(root)"),
    ("{\"run\": [{\"params\": {\"m\": \"x}]}", 1, 27, "unterminated string", "run[0].params.m"),
    ("{\"run\": [1 2]}", 1, 12, "expected ',' or ']' after array element", "run"),
    ("{\"a\": tru}", 1, 7, "expected a value, found 'tru'", "a"),
    ("{\"a\" 1}", 1, 6, "expected ':' after object key", "(root)"),
    ("{a: 1}", 1, 2, "expected a double-quoted property name", "(root)"),
    ("{\"a\": 'x'}", 1, 7, "JSON strings use double quotes", "a"),
    ("{\"a\": 1} /* open", 1, 10, "unterminated block comment", "(root)"),
    ("{\"a\": [1, 2", 1, 12, "expected ',' or ']' after array element, found end of input", "a"),
    ("{\"a\": 01}", 1, 7, "leading zeros", "a"),
    ("{\"a\": \"\\q\"}", 1, 8, "invalid escape sequence '\\q'", "a"),
    ("{\"a\": 1} x", 1, 10, "unexpected 'x' after the script's top-level object", "(root)"),
    ("", 1, 1, "empty script", "(root)"),
    ("[1]", 1, 1, "not an array", "(root)"),
  ])
  func malformedJSONReportsPosition(
    text: String, line: Int, column: Int, message: String, path: String
  ) throws {
    let error = try #require(loadError(text))
    #expect(error.line == line, "\(error)")
    #expect(error.column == column, "\(error)")
    #expect(error.message.contains(message), "\(error)")
    #expect((error.path ?? .root).description == path, "\(error)")
    #expect(error.description.hasPrefix("test.json:\(line):\(column): "))
  }

  @Test func errorDescriptionNamesPath() throws {
    let text = "{\n  \"run\": [\n    {},\n    { \"params\": { \"a\": 1 \"b\": 2 } }\n  ]\n}"
    let error = try #require(loadError(text, file: "install.json"))
    #expect(
      error.description
        == "install.json:4:26: expected ',' or '}' after object member, found '\"' (at run[1].params)")
  }

  @Test(arguments: [
    "module.exports = async (kernel, info) => { return {} }",
    "module.exports = function (kernel) { return { run: [] } }",
    "module.exports = kernel => ({ run: [] })",
    "module.exports = (kernel) => ({})",
  ])
  func functionModulesAreRefused(text: String) throws {
    let error = try #require(loadError(text, file: "install.js"))
    #expect(error.message.contains("only object-literal modules (`module.exports = { ... }`) are supported"))
    #expect(error.message.contains("function"), "\(error)")
    #expect(error.line == 1 && error.column == 18)
  }

  @Test func unsupportedModuleContent() throws {
    let call = try #require(loadError("module.exports = {\n  run: require('./steps'),\n}", file: "a.js"))
    #expect(call.message.contains("unsupported call 'require(...)'"))
    #expect(call.line == 2 && call.column == 8)
    #expect(call.path?.description == "run")

    let variable = try #require(loadError("module.exports = { run: [steps] }", file: "a.js"))
    #expect(variable.message.contains("unsupported value 'steps'"))
    #expect(variable.path?.description == "run[0]")

    let expression = try #require(loadError("module.exports = { a: 1 + 2 }", file: "a.js"))
    #expect(expression.message.contains("expected ',' or '}' after object member, found '+'"))

    let prelude = try #require(loadError("const path = require('path')\nmodule.exports = {}", file: "a.js"))
    #expect(prelude.message.contains("only object-literal modules"))

    let trailing = try #require(loadError("module.exports = {}; console.log(1)", file: "a.js"))
    #expect(trailing.message.contains("a module may hold only that statement"))

    let substitution = try #require(loadError("module.exports = { a: `x${y}` }", file: "a.js"))
    #expect(substitution.message.contains("${...}"))

    #expect(loadError("module.exports = { a: NaN }", file: "a.js")?.message.contains("NaN") == true)
    #expect(loadError("module.export = {}", file: "a.js") != nil)
  }

  @Test func detectionIsByContentNotExtension() throws {
    #expect(try load("module.exports = { a: 1 }", file: "x.json").format == .commonJS)
    #expect(try load("{\"a\": 1}", file: "x.js").format == .json)
    #expect(try load("\u{FEFF}{\"a\": 1}", file: "bom.json").value == ["a": 1])
  }

  @Test func nestingIsCapped() throws {
    let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
    let error = try #require(loadError("{\"a\": \(deep)}"))
    #expect(error.message.contains("nesting too deep"))
    let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
    #expect(loadError("{\"a\": \(fine)}") == nil)
  }

  @Test func duplicateKeysForgetEarlierLocations() throws {
    let document = try load("{\"p\": {\"x\": 1}, \"p\": {\"y\": 2}}")
    #expect(document.value == ["p": ["y": 2]])
    #expect(document.location(of: ["p", "x"]) == nil)
    #expect(document.location(of: ["p", "y"])?.column == 28)
  }

  @Test func pathDescriptions() {
    #expect(JSONPath(["run", 1, "params", "message"]).description == "run[1].params.message")
    #expect(JSONPath(["env", "MY-VAR"]).description == "env[\"MY-VAR\"]")
    #expect(JSONPath.root.description == "(root)")
    #expect(JSONPath(["a", "b"]).hasPrefix(["a"]))
  }

  @Test func nonASCIIColumnsCountCharacters() throws {
    let error = try #require(loadError("{\"é\": \"ü\" x}"))
    #expect(error.column == 11)
  }
}
