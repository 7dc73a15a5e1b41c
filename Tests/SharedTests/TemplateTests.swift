import Foundation
import Testing

@testable import Shared

private func scope(
  gpu: String = "nvidia", model: TemplateValue = "NVIDIA GeForce RTX 5090", args: TemplateValue = .undefined,
  input: TemplateValue = .undefined, local: TemplateValue = [:]
) -> TemplateScope {
  TemplateScope(
    variables: [
      "platform": "linux", "arch": "x64", "gpu": .string(gpu), "kernel": ["gpu_model": model], "args": args,
      "input": input, "local": local, "self": ["title": "c10", "count": 2], "cwd": "/work/job",
      "port": 42000, "env": ["HOME": "/work/job/home"],
    ],
    functions: [
      "exists": { arguments in .bool(arguments.first == "install.json") },
      "which": { arguments in arguments.first == "sh" ? "/bin/sh" : .null },
      "boom": { _ in throw TemplateError(template: "", expression: "", offset: 0, message: "host failure") },
    ])
}

private func value(_ expression: String, _ s: TemplateScope = scope()) throws(TemplateError) -> TemplateValue
{
  try Template.renderString("{{\(expression)}}", scope: s)
}

private func failure(_ template: String, _ s: TemplateScope = scope()) -> TemplateError? {
  do throws(TemplateError) {
    _ = try Template.renderString(template, scope: s)
    return nil
  } catch {
    return error
  }
}

@Suite struct TemplateTests {
  @Test func corpusExpressions() throws {
    let nvidia50 = "{{gpu === 'nvidia' && kernel.gpu_model && / 50.+/.test(kernel.gpu_model) }}"
    #expect(try Template.condition(.string(nvidia50), scope: scope()))
    #expect(try !Template.condition(.string(nvidia50), scope: scope(model: "NVIDIA RTX A6000")))
    #expect(try !Template.condition(.string(nvidia50), scope: scope(gpu: "none", model: .null)))
    #expect(
      try value("gpu === 'nvidia' && kernel.gpu_model && / 50.+/.test(kernel.gpu_model)", scope(model: .null))
        == .null)

    let args: TemplateValue = ["path": "app", "xformers": true]
    #expect(try value("args && args.venv ? args.venv : null", scope(args: args)) == .null)
    #expect(try value("args && args.path ? args.path : '.'", scope(args: args)) == "app")
    #expect(try value("args && args.path ? args.path : '.'") == ".")
    #expect(
      try Template.renderString(
        "echo C03-LINUX-NVIDIA {{args && args.xformers ? 'with-xformers' : 'plain'}}",
        scope: scope(args: args))
        == "echo C03-LINUX-NVIDIA with-xformers")

    #expect(try value("input.count + 1", scope(input: ["greeting": "hello-c04", "count": 41])) == 42)
    #expect(
      try Template.renderString("hello-{{args.name}}", scope: scope(args: ["name": "c04"])) == "hello-c04")

    let local: TemplateValue = ["n": 2, "label": "c10-linux"]
    #expect(try value("typeof local.n", scope(local: local)) == "number")
    #expect(
      try Template.renderString(
        "echo C10-TYPED {{typeof local.n}} {{local.n * 10}} {{local.label}}", scope: scope(local: local))
        == "echo C10-TYPED number 20 c10-linux")
    #expect(try value("local.label.toUpperCase()", scope(local: local)) == "C10-LINUX")
    #expect(try value("['a','b'].includes('b')") == true)
    #expect(try value("exists('install.json') && which('sh') ? true : false") == true)
    #expect(try value("exists('no-such-file')") == false)
    #expect(try value("self.title + '-' + platform") == "c10-linux")
    #expect(try value("self.count") == 2)
    #expect(
      try value("args.base + '/' + args.file", scope(args: ["base": "http://127.0.0.1:9", "file": "w.bin"]))
        == "http://127.0.0.1:9/w.bin")
    #expect(
      try value("input.event[1]", scope(input: ["event": ["(http://x:1/)", "http://x:1"]])) == "http://x:1")
    #expect(
      try Template.renderString("echo C10-ESCAPED '{{{ not.rendered }}}'", scope: scope())
        == "echo C10-ESCAPED '{{ not.rendered }}'")
    #expect(try Template.renderString("{{cwd}}/tools", scope: scope()) == "/work/job/tools")
    #expect(
      try Template.renderString("python3 -m http.server {{port}}", scope: scope())
        == "python3 -m http.server 42000")
  }

  @Test func aTemplateParsedOnceRendersAfreshInEveryScope() throws {
    // Unique text, so the shared cache cannot hold it from another test.
    let text = "echo job {{args.index}} \(UUID().uuidString)"
    let first = try Template.renderString(text, scope: scope(args: ["index": 1]))
    let second = try Template.renderString(text, scope: scope(args: ["index": 2]))
    #expect(first.jsString.hasPrefix("echo job 1 "))
    #expect(second.jsString.hasPrefix("echo job 2 "))
    // A broken one fails the same way each time, from the cache too.
    let broken = "{{ args.index + }} \(UUID().uuidString)"
    let once = try #require(failure(broken))
    let again = try #require(failure(broken))
    #expect(once.description == again.description)
    #expect(once.description.contains("args.index +"))
  }

  @Test func renderKeepsTypesAndDropsUndefined() throws {
    let step: JSONValue = [
      "n": "{{self.count}}", "flag": "{{ 1 < 2 }}", "none": "{{null}}",
      "obj": "{{ {a: [1, 'x'], b: undefined} }}",
      "gone": "{{args.venv}}", "list": ["{{args.venv}}", "x{{args.venv}}y", "{{local}}"],
      "{{key}}": "keys are not rendered", "mixed": "{{self.count}} items",
    ]
    let rendered = try Template.render(step, scope: scope(args: [:]))
    let expected: JSONValue = [
      "n": 2, "flag": true, "none": .null, "obj": ["a": [1, "x"]], "list": [.null, "xy", [:]],
      "{{key}}": "keys are not rendered", "mixed": "2 items",
    ]
    #expect(rendered == expected)
    #expect(rendered?.objectValue?.keys.contains("gone") == false)
    #expect(try Template.render("{{args.venv}}", scope: scope(args: [:])) == nil)
    #expect(try Template.render("plain", scope: scope()) == "plain")
    #expect(try Template.render(3, scope: scope()) == 3)
  }

  @Test func mixedInterpolationUsesStringConversion() throws {
    #expect(try Template.renderString("a{{null}}b{{undefined}}c", scope: scope()) == "abc")
    #expect(try Template.renderString("{{[1, null, 'x']}}!", scope: scope()) == "1,,x!")
    #expect(try Template.renderString("{{ {} }}!", scope: scope()) == "[object Object]!")
    #expect(
      try Template.renderString("{{0.1 + 0.2}} {{1e21}} {{1/3}} {{0.00001}} {{-0}} {{2/0}}", scope: scope())
        == "0.30000000000000004 1e+21 0.3333333333333333 0.00001 0 Infinity")
    #expect(
      try Template.renderString("{{1e-7}} {{123456789012}} {{1.5}}", scope: scope())
        == "1e-7 123456789012 1.5")
    #expect(try Template.renderString("{{ '}}' }}x", scope: scope()) == "}}x")
    #expect(try Template.renderString("{{a}}", scope: TemplateScope(variables: ["a": "{{b}}"])) == "{{b}}")
    #expect(try Template.renderString("{{{a}}}", scope: scope()) == "{{a}}")
  }

  @Test func numbersPrintAsJavaScriptDoes() {
    let cases: [(Double, String)] = [
      (1e21, "1e+21"), (1e20, "100000000000000000000"), (1.5e-7, "1.5e-7"), (0.000001, "0.000001"),
      (123e-20, "1.23e-18"), (-0.5, "-0.5"), (42, "42"), (.nan, "NaN"), (-.infinity, "-Infinity"),
      (2.5e30, "2.5e+30"), (0.1, "0.1"), (100, "100"),
    ]
    for (number, text) in cases {
      #expect(JSNumber.string(number) == text)
    }
    #expect(JSNumber.parse(" 12 ") == 12)
    #expect(JSNumber.parse("") == 0)
    #expect(JSNumber.parse("0x10") == 16)
    #expect(JSNumber.parse("12px").isNaN)
    #expect(JSNumber.parse("nan").isNaN)
  }

  @Test func templateBoundaries() throws {
    #expect(try Template.renderString("{{ 'a' }}{{ 'b' }}", scope: scope()) == "ab")
    #expect(try Template.renderString("{{ 1 }}}", scope: scope()) == "1}")
    #expect(failure("{{ } }}")?.message == "unexpected '}'")
    #expect(try Template.renderString("{{ {a: {b: 1}}.a.b }}", scope: scope()) == 1)
    #expect(try value("'abc'.split(/(?:)/)") == ["a", "b", "c"])
    #expect(try Template.renderString("{{{ a }}} and {{ 1 }}", scope: scope()) == "{{ a }} and 1")
  }

  @Test func conditions() throws {
    #expect(try Template.condition(true, scope: scope()))
    #expect(try !Template.condition(false, scope: scope()))
    #expect(try !Template.condition(.null, scope: scope()))
    #expect(try !Template.condition(0, scope: scope()))
    #expect(try Template.condition([], scope: scope()))
    #expect(try !Template.condition("{{args.missing}}", scope: scope(args: [:])))
    #expect(try !Template.condition("{{''}}", scope: scope()))
    #expect(try Template.condition("{{platform === 'linux' && gpu === 'nvidia'}}", scope: scope()))
    #expect(try !Template.condition("{{platform === 'win32' && gpu === 'nvidia'}}", scope: scope()))
  }

  @Test func operatorsFollowJavaScript() throws {
    #expect(try value("null == undefined") == true)
    #expect(try value("null === undefined") == false)
    #expect(try value("'1' == 1") == true)
    #expect(try value("'1' === 1") == false)
    #expect(try value("0 == false") == true)
    #expect(try value("'' == 0") == true)
    #expect(try value("null == 0") == false)
    #expect(try value("NaN == NaN") == false)
    #expect(try value("[1,2] == '1,2'") == true)
    #expect(try value("1 != '1'") == false)
    #expect(try value("1 !== '1'") == true)
    #expect(try value("'b' > 'a'") == true)
    #expect(try value("'10' < '9'") == true)
    #expect(try value("'10' < 9") == false)
    #expect(try value("1 + '2'") == "12")
    #expect(try value("'3' * '4'") == 12)
    #expect(try value("7 % 3 + 2 ** 3 - -1") == 10)
    #expect(try value("1 + 2 * 3") == 7)
    #expect(try value("(1 + 2) * 3") == 9)
    #expect(try value("10 / 4") == 2.5)
    #expect(try value("'' || 'x'") == "x")
    #expect(try value("0 && 'x'") == 0)
    #expect(try value("null ?? 'd'") == "d")
    #expect(try value("!''") == true)
    #expect(try value("!!'a'") == true)
    #expect(try value("+'42'") == 42)
    #expect(try value("1 + true") == 2)
    #expect(try value("[1] + [2]") == "12")
    #expect(try value("typeof undefined") == "undefined")
    #expect(try value("typeof null") == "object")
    #expect(try value("typeof /x/") == "object")
    #expect(try value("typeof which") == "function")
    #expect(try value("typeof notDefinedAnywhere") == "undefined")
    #expect(try value("typeof 'a'") == "string")
    #expect(try value("true ? 1 : false ? 2 : 3") == 1)
    #expect(try value("false ? 1 : false ? 2 : 3") == 3)
    #expect(try value("local?.a?.b") == .undefined)
    #expect(try value("local.a?.b.c") == .undefined)
    #expect(try value(" {a: 1, 'b': 2, 3: 'c'} ") == ["a": 1, "b": 2, "3": "c"])
    #expect(try value("[1, 'two', [3]][2][0]") == 3)
    #expect(try value("self['title']") == "c10")
  }

  @Test func regexes() throws {
    #expect(try value("/errno/i.test('ERRNO 2')") == true)
    #expect(try value("'a/b'.replace(/\\//, '-')") == "a-b")
    #expect(try value("'x1y22z'.match(/[0-9]+/g)") == ["1", "22"])
    #expect(try value("'x1y'.match(/(\\d)(q)?/)") == ["1", "1", .undefined])
    #expect(try value("'abc'.match(/z/)") == .null)
    #expect(try value("'a-b-c'.replace('-', '+')") == "a+b-c")
    #expect(try value("'a-b-c'.replaceAll('-', '+')") == "a+b+c")
    #expect(try value("'John Smith'.replace(/(\\w+)\\s(\\w+)/, '$2, $1')") == "Smith, John")
    #expect(try value("'a1b2'.replace(/\\d/g, '[$&]')") == "a[1]b[2]")
    #expect(try value("'a, b,c'.split(/\\s*,\\s*/)") == ["a", "b", "c"])
    #expect(try value("'abc'.split('')") == ["a", "b", "c"])
    #expect(try value("'a,b,c'.split(',', 2)") == ["a", "b"])
    #expect(try value("4 / 2 / 1") == 2)
    #expect(try value("(8) / 2") == 4)
    #expect(try value("/a.b/s.test('a\\nb')") == true)
    #expect(try value("/^b/m.test('a\\nb')") == true)
    #expect(failure("{{ /(/.test('x') }}")?.message.contains("invalid pattern") == true)
    #expect(failure("{{ /x/q.test('x') }}")?.message.contains("invalid flag") == true)

    let event = try JSRegex(literal: #"/\((http:\/\/[0-9.:]+)\/?\)/"#)
    #expect(
      event.firstMatch(in: "Serving HTTP on 127.0.0.1 port 8000 (http://127.0.0.1:8000/) ...")
        == ["(http://127.0.0.1:8000/)", "http://127.0.0.1:8000"])
    #expect(event.firstMatch(in: "nothing here") == nil)
    let insensitive = try JSRegex(literal: "/out of memory/i")
    #expect(insensitive.flags == "i")
    #expect(insensitive.test("FATAL: CUDA Out Of Memory"))
    let bare = try JSRegex(literal: "ready( on)?")
    #expect(bare.firstMatch(in: "ready") == ["ready", nil])
    #expect(throws: JSRegexError.self) { try JSRegex(literal: "/[/") }
  }

  @Test func stringArrayAndNumberMethods() throws {
    #expect(try value("'  pad '.trim() + '|' + ' x'.trimStart() + '|' + 'y '.trimEnd()") == "pad|x|y")
    #expect(try value("'abcdef'.slice(-3, -1)") == "de")
    #expect(try value("'abcdef'.substring(4, 1)") == "bcd")
    #expect(try value("'abc'.padStart(6, '12') + 'x'.padEnd(3)") == "121abcx  ")
    #expect(try value("'ab'.repeat(3)") == "ababab")
    #expect(try value("'hello'.indexOf('l') + 'hello'.lastIndexOf('l')") == 5)
    #expect(
      try value("'hello'.startsWith('he') && 'hello'.endsWith('lo') && 'hello'.includes('ell')") == true)
    #expect(try value("'héllo'.length") == 5)
    #expect(try value("'abc'.charAt(1) + 'abc'.at(-1) + 'abc'[0]") == "bca")
    #expect(try value("'a'.concat('b', 1)") == "ab1")
    #expect(try value("[3, 1, 2].join('-')") == "3-1-2")
    #expect(try value("[1, 2, 3].slice(1).concat([4], 5)") == [2, 3, 4, 5])
    #expect(try value("[1, 2, 3].indexOf(3)") == 2)
    #expect(try value("[1, 2, 3].at(-1)") == 3)
    #expect(try value("[1, 2, 3].reverse()") == [3, 2, 1])
    #expect(try value("[1, 2, 3].length") == 3)
    #expect(try value("(3.14159).toFixed(2)") == "3.14")
    #expect(
      try value(
        "(2.5).toFixed(0) + ' ' + (1.005).toFixed(2) + ' ' + (-1.5).toFixed(0) + ' ' + (9.995).toFixed(1)")
        == "3 1.00 -2 10.0")
    #expect(
      try value("(0).toFixed(2) + ' ' + (1234.5678).toFixed(1) + ' ' + (0.5).toFixed()") == "0.00 1234.6 1")
    #expect(try value("(255).toString(16)") == "ff")
    #expect(try value("String(12) + Number('3') + Boolean(0)") == "123false")
    #expect(try value("parseInt('42px') + parseFloat('1.5e1x')") == 57)
    #expect(
      try value("Math.max(1, 5, 3) + Math.min(2, 4) + Math.floor(2.7) + Math.ceil(0.1) + Math.abs(-1)") == 11)
    #expect(try value("Math.round(2.5) + Math.round(-2.5)") == 1)
    #expect(try value("JSON.stringify({a: [1, 'x'], b: undefined})") == #"{"a":[1,"x"]}"#)
    #expect(try value("JSON.parse('{\"a\": [1, 2]}').a[1]") == 2)
    #expect(try value("Object.keys({a: 1, b: 2})") == ["a", "b"])
    #expect(try value("Array.isArray([])") == true)
  }

  @Test func errorsNameTheProblem() throws {
    let unknown = try #require(failure("{{ foo.bar }}"))
    #expect(unknown.message == "unknown variable 'foo'")
    #expect(unknown.description == "unknown variable 'foo' in '{{ foo.bar }}'")
    #expect(unknown.expression == " foo.bar ")
    #expect(unknown.offset == 3)

    let offset = try #require(failure("echo {{ a }} {{ nope }}", TemplateScope(variables: ["a": 1])))
    #expect(offset.offset == 16)
    #expect(offset.template == "echo {{ a }} {{ nope }}")

    let unterminated = try #require(failure("echo {{ args.x"))
    #expect(unterminated.message == "unterminated '{{'")
    #expect(unterminated.offset == 5)
    #expect(unterminated.description == "unterminated '{{' in '{{ args.x'")

    let method = try #require(failure("{{ 'a'.frobnicate() }}"))
    #expect(method.message.contains("unknown method 'frobnicate'"))

    let member = try #require(failure("{{ local.missing.deeper }}"))
    #expect(member.message.contains("cannot read property 'deeper' of undefined"))
    #expect(member.message.contains("'local.missing'"))

    let nullMember = try #require(failure("{{ kernel.gpu_model.length }}", scope(model: .null)))
    #expect(nullMember.message.contains("of null"))

    let call = try #require(failure("{{ local.nothing.trim() }}"))
    #expect(call.message.contains("cannot call 'trim' of undefined"))

    #expect(failure("{{ nofn('x') }}")?.message == "unknown function 'nofn'")
    #expect(failure("{{ boom() }}")?.message == "boom(): host failure")
    #expect(failure("{{ self.count() }}")?.message.contains("is not a function") == true)
    #expect(failure("{{ 1 + }}")?.message == "unexpected end of expression")
    #expect(
      failure("{{ a = 1 }}", TemplateScope(variables: ["a": 1]))?.message.contains("assignment") == true)
    #expect(failure("{{ }}")?.message == "empty expression")
    #expect(failure("{{ 'open }}")?.message == "unterminated string literal")
    #expect(failure("{{ 'open }} }}")?.message == "unterminated string literal")
    #expect(failure("{{ # }}")?.message == "unexpected character '#'")
    #expect(failure("{{ [1].map(x => x) }}") != nil)
    #expect(failure("{{ 'x'.repeat(1e9) }}")?.message == "string too long")
  }

  @Test func checkValidatesWithoutEvaluating() {
    let variables = Template.standardVariables
    let functions = Template.standardFunctions
    #expect(
      Template.check(
        "echo {{args.x}} {{which('sh')}} {{JSON.stringify(local)}}", knownVariables: variables,
        knownFunctions: functions
      ).isEmpty)
    #expect(
      Template.check(
        "{{ typeof maybe === 'undefined' }}", knownVariables: variables, knownFunctions: functions
      ).isEmpty)
    let errors = Template.check(
      "{{ foo.bar }} {{ 'a'.frobnicate() }} {{ 1 + }} {{ nofn() }}", knownVariables: variables,
      knownFunctions: functions)
    #expect(
      errors.map(\.message) == [
        "unknown variable 'foo'", "unknown method 'frobnicate'", "unexpected end of expression",
        "unknown function 'nofn'",
      ])
    #expect(
      Template.check("x {{ a", knownVariables: [], knownFunctions: []).map(\.message) == ["unterminated '{{'"]
    )
    #expect(Template.check("{{{ anything }}}", knownVariables: [], knownFunctions: []).isEmpty)
  }

  @Test func jsonConversions() {
    let value: TemplateValue = [
      "a": .undefined, "b": [.undefined, 1], "c": .regex(try! JSRegex(pattern: "x")),
    ]
    #expect(value.jsonValue == ["b": [.null, 1], "c": [:]])
    #expect(TemplateValue.undefined.jsonValue == nil)
    #expect(TemplateValue(["x": [1, "y", .null, true]]) == ["x": [1, "y", .null, true]])
  }

  @Test func deepExpressionsAreRefusedNotCrashed() {
    let deep = String(repeating: "(", count: 400) + "1" + String(repeating: ")", count: 400)
    #expect(failure("{{\(deep)}}")?.message.contains("nested too deeply") == true)
    let chain = "{{ 1" + String(repeating: " + 1", count: 1000) + " }}"
    #expect(failure(chain)?.message.contains("nested too deeply") == true)
    let fine = String(repeating: "(", count: 200) + "1" + String(repeating: ")", count: 200)
    #expect(failure("{{\(fine)}}") == nil)
  }
}
