import Foundation
import Testing

@testable import Shared

private let scriptSeeds: [String] = [
  #"{"run": [{"method": "shell.run", "params": {"message": ["echo a", "b"], "path": "app"}}]}"#,
  "// c\n{\"a\": 1, /* x */ \"a\": [true, false, null, -1.5e3, \"\\u00e9\\n\"],}",
  "module.exports = {\n  run: [{ method: 'shell.run', params: { message: \"x\", n: 0x1f, u: undefined } },],\n};",
  "module.exports = async (kernel) => ({})",
  #"{"when": "{{gpu === 'nvidia' && / 50.+/.test(kernel.gpu_model)}}", "next": null}"#,
]

private let templateSeeds: [String] = [
  "{{gpu === 'nvidia' && kernel.gpu_model && / 50.+/.test(kernel.gpu_model) }}",
  "{{args && args.venv ? args.venv : null}}",
  "echo {{input.count + 1}} {{typeof local.n}}",
  "{{local.label.toUpperCase()}} {{['a','b'].includes('b')}}",
  "{{exists('install.json') && which('sh') ? true : false}}",
  "{{args.base + '/' + args.file}}",
  "{{input.event[1]}}",
  "echo C10-ESCAPED '{{{ not.rendered }}}'",
  "{{ {a: [1, 'x'], b: {c: null}} }}",
  "{{ 'a,b'.split(/,/).join('-').replace(/a/g, '$&$&') }}",
  "{{ JSON.stringify(JSON.parse('[1,{\"a\":2}]')) }}",
  "{{ local?.x?.y ?? Math.max(1, 2) % 3 ** 2 }}",
]

private let scriptAlphabet: [String] = [
  "{", "}", "[", "]", ",", ":", "\"", "'", "`", "/", "*", "//", "/*", "*/", "\\", "\\u", "\\u{", "\n", " ",
  "module", ".", "exports", "=", ";", "true", "null", "undefined", "1", "-", "+", "e", "0x", "a", "é", "${",
  "=>", "(", ")", "require", "\u{0}", "\u{FEFF}",
]

private let templateAlphabet: [String] = [
  "{{", "}}", "{{{", "}}}", "{", "}", "(", ")", "[", "]", ".", "?.", "?", ":", ",", "'", "\"", "`", "/", "\\",
  "+", "-", "*", "%", "**", "!", "&&", "||", "??", "===", "!==", "==", "<", ">=", "=", "=>", "typeof ", " ",
  "a", "args", "local", "input", "x", "length", "toUpperCase()", "split", "replace", "match", "test", "1",
  "0",
  "1e3", ".5", "0x", "null", "undefined", "true", "which('sh')", "exists", "JSON", "Math", "/x/g", "[^]",
  "$1",
  "é", "\n", "#",
]

private func mutate(_ seed: String, alphabet: [String], using rng: inout SplitMix64) -> String {
  var scalars = Array(seed.unicodeScalars)
  let edits = Int.random(in: 1...6, using: &rng)
  for _ in 0..<edits {
    let position = scalars.isEmpty ? 0 : Int.random(in: 0...scalars.count, using: &rng)
    switch Int.random(in: 0..<4, using: &rng) {
    case 0 where !scalars.isEmpty && position < scalars.count:
      scalars.remove(at: position)
    case 1:
      scalars.insert(contentsOf: alphabet.randomElement(using: &rng)!.unicodeScalars, at: position)
    case 2 where !scalars.isEmpty:
      let start = min(position, scalars.count - 1)
      let end = min(scalars.count, start + Int.random(in: 1...8, using: &rng))
      scalars.insert(contentsOf: scalars[start..<end], at: Int.random(in: 0...scalars.count, using: &rng))
    default:
      if position < scalars.count {
        scalars[position] = alphabet.randomElement(using: &rng)!.unicodeScalars.first!
      }
    }
  }
  return String(String.UnicodeScalarView(scalars))
}

private func randomText(alphabet: [String], using rng: inout SplitMix64) -> String {
  (0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined()
}

private func randomJSON(depth: Int, using rng: inout SplitMix64) -> JSONValue {
  switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &rng) {
  case 0: return .null
  case 1: return .bool(Bool.random(using: &rng))
  case 2: return .number(Double(Int.random(in: -1000...1000, using: &rng)) / 8)
  case 3: return .string(randomText(alphabet: ["a", "\"", "\\", "\n", "é", "😀", "{{", "/"], using: &rng))
  case 4:
    return .array(
      (0..<Int.random(in: 0...4, using: &rng)).map { _ in randomJSON(depth: depth + 1, using: &rng) })
  default:
    var object = JSONObject()
    for _ in 0..<Int.random(in: 0...4, using: &rng) {
      object[randomText(alphabet: ["k", "é", " ", "\""], using: &rng)] = randomJSON(
        depth: depth + 1, using: &rng)
    }
    return .object(object)
  }
}

@Suite struct ScriptFuzzTests {
  @Test func loaderSurvivesRandomInput() {
    var parsed = 0
    FuzzRun("script.loader", seed: 0x5EED_0001, iterations: 3000).run { rng, iteration in
      let input: String
      switch iteration % 3 {
      case 0: input = mutate(scriptSeeds.randomElement(using: &rng)!, alphabet: scriptAlphabet, using: &rng)
      case 1: input = randomText(alphabet: scriptAlphabet, using: &rng)
      default:
        // Generated documents must load back to exactly what was written.
        let value: JSONValue = ["run": randomJSON(depth: 0, using: &rng)]
        let text = value.serialized(pretty: Bool.random(using: &rng))
        let loaded: JSONValue
        do throws(ScriptLoadError) {
          loaded = try ScriptSource.parse(text, file: "gen.json").value
        } catch {
          throw FuzzFailure(description: "generated JSON failed to load: \(error)\n\(text)")
        }
        try fuzzCheck(loaded == value, "generated JSON loaded differently:\n\(text)")
        return
      }
      do throws(ScriptLoadError) {
        let document = try ScriptSource.parse(input, file: "fuzz.json")
        _ = document.location(of: .root)
        parsed += 1
      } catch {
        try fuzzCheck(error.line >= 1 && error.column >= 1, "bad position for \(input.debugDescription)")
        try fuzzCheck(!error.message.isEmpty, "empty message for \(input.debugDescription)")
      }
    }
    #expect(parsed > 0)
  }

  @Test func loaderRefusesDeepNesting() {
    for opener in ["[", "{\"a\":"] {
      let text = "{\"x\": " + String(repeating: opener, count: 5000)
      #expect(throws: ScriptLoadError.self) { try ScriptSource.parse(text, file: "deep.json") }
    }
  }

  @Test func templatesSurviveRandomInput() {
    let scope = TemplateScope(
      variables: [
        "args": ["x": 1, "base": "http://h"], "local": ["label": "c10", "n": 2],
        "input": ["event": ["a", "b"]],
        "gpu": "nvidia", "kernel": ["gpu_model": "RTX 5090"], "a": "text", "x": [1, 2],
      ],
      functions: [
        "which": { _ in "/bin/sh" },
        "exists": { _ in throw TemplateError(template: "", expression: "", offset: 0, message: "no") },
      ])
    var rendered = 0
    FuzzRun("templates", seed: 0x5EED_0002, iterations: 3000).run { rng, iteration in
      let input =
        iteration % 2 == 0
        ? mutate(templateSeeds.randomElement(using: &rng)!, alphabet: templateAlphabet, using: &rng)
        : "{{" + randomText(alphabet: templateAlphabet, using: &rng) + "}}"
      do throws(TemplateError) {
        _ = try Template.renderString(input, scope: scope)
        _ = try Template.render(.array([.string(input)]), scope: scope)
        rendered += 1
      } catch {
        try fuzzCheck(!error.message.isEmpty, "empty message for \(input.debugDescription)")
        try fuzzCheck(
          error.offset >= 0 && error.offset <= input.unicodeScalars.count,
          "offset \(error.offset) outside \(input.debugDescription)")
      }
      _ = Template.check(
        input, knownVariables: Template.standardVariables, knownFunctions: Template.standardFunctions)
    }
    #expect(rendered > 0)
  }

  @Test func templateNestingIsCapped() {
    for opener in ["(", "[", "{a:", "!", "-", "a ? b : "] {
      let text = "{{ " + String(repeating: opener, count: 5000) + " }}"
      let scope = TemplateScope(variables: ["a": 1, "b": 2])
      #expect(throws: TemplateError.self) { try Template.renderString(text, scope: scope) }
      _ = Template.check(text, knownVariables: ["a", "b"], knownFunctions: [])
    }
  }
}
