import Foundation
import Testing

@testable import Shared
@testable import Worker

struct ParsedScriptsTests {
  private func parse(_ text: String) throws -> Script {
    try Script.load(text: text, file: "run.json")
  }

  @Test func aScriptIsFoundByItsBytesAndNameOnly() throws {
    let cache = ParsedScripts(capacity: 4)
    let text = #"{ "run": [ { "method": "shell.run", "params": { "message": "echo a" } } ] }"#
    let bytes = Data(text.utf8)
    #expect(cache.script(bytes, file: "run.json") == nil)
    cache.keep(try parse(text), bytes, file: "run.json")
    #expect(cache.script(bytes, file: "run.json")?.steps.count == 1)
    // One byte changed, or the same bytes under another name (errors name the file).
    let edited = Data(text.replacingOccurrences(of: "echo a", with: "echo b").utf8)
    #expect(cache.script(edited, file: "run.json") == nil)
    #expect(cache.script(bytes, file: "other.json") == nil)
  }

  @Test func aFullCacheStartsAfresh() throws {
    let cache = ParsedScripts(capacity: 2)
    let script = try parse(#"{ "run": [] }"#)
    for name in ["a.json", "b.json"] { cache.keep(script, Data("x".utf8), file: name) }
    #expect(cache.count == 2)
    cache.keep(script, Data("x".utf8), file: "c.json")
    #expect(cache.count == 1)
    #expect(cache.script(Data("x".utf8), file: "c.json") != nil)
    #expect(cache.script(Data("x".utf8), file: "a.json") == nil)
  }
}
