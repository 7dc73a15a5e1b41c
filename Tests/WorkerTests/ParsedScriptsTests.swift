import Foundation
import Testing

@testable import Shared
@testable import Worker

struct ParsedScriptsTests {
  private func parse(_ text: String) throws -> Script {
    try Script.load(text: text, file: "run.json")
  }

  @Test func aScriptIsFoundByItsBytesAndNameOnly() throws {
    let cache = BoundedCache<ParsedScripts.Key, Script>(capacity: 4)
    let text = #"{ "run": [ { "method": "shell.run", "params": { "message": "echo a" } } ] }"#
    let bytes = Data(text.utf8)
    #expect(cache[ParsedScripts.Key(file: "run.json", bytes: bytes)] == nil)
    cache.keep(try parse(text), for: ParsedScripts.Key(file: "run.json", bytes: bytes))
    #expect(cache[ParsedScripts.Key(file: "run.json", bytes: bytes)]?.steps.count == 1)
    // One byte changed, or the same bytes under another name (errors name the file).
    let edited = Data(text.replacingOccurrences(of: "echo a", with: "echo b").utf8)
    #expect(cache[ParsedScripts.Key(file: "run.json", bytes: edited)] == nil)
    #expect(cache[ParsedScripts.Key(file: "other.json", bytes: bytes)] == nil)
  }

  @Test func aFullCacheStartsAfresh() throws {
    let cache = BoundedCache<ParsedScripts.Key, Script>(capacity: 2)
    let script = try parse(#"{ "run": [] }"#)
    for name in ["a.json", "b.json"] {
      cache.keep(script, for: ParsedScripts.Key(file: name, bytes: Data("x".utf8)))
    }
    #expect(cache.count == 2)
    cache.keep(script, for: ParsedScripts.Key(file: "c.json", bytes: Data("x".utf8)))
    #expect(cache.count == 1)
    #expect(cache[ParsedScripts.Key(file: "c.json", bytes: Data("x".utf8))] != nil)
    #expect(cache[ParsedScripts.Key(file: "a.json", bytes: Data("x".utf8))] == nil)
  }
}
