import Foundation
import Testing

@testable import Worker

@Suite struct ConfinementTests {
  /// `outside/` beside `ws/`, so links have somewhere real to escape to.
  func makeLayout() throws -> (WorkerTestDirectory, Confinement) {
    let dir = try WorkerTestDirectory()
    try dir.mkdir("ws/app/src")
    try dir.mkdir("outside")
    try dir.write("outside/secret.txt", "s")
    return (dir, Confinement(root: dir.file("ws")))
  }

  @Test func dotDotIsNormalised() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    #expect(try c.resolve("app/src/../x.txt") == dir.file("ws/app/x.txt"))
    #expect(try c.resolve("./app//src/.") == dir.file("ws/app/src"))
    #expect(try c.resolve("") == dir.file("ws"))
    #expect(try c.resolve(".") == c.root)
  }

  @Test func escapingWithDotDotIsRefused() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    do {
      _ = try c.resolve("../../x")
      Issue.record("expected a refusal")
    } catch {
      let expected = (dir.path as NSString).deletingLastPathComponent + "/x"
      #expect(
        error.description == "path '../../x' resolves to '\(expected)', outside the workspace '\(c.root)'")
    }
    #expect(throws: ConfinementError.self) { try c.resolve("..") }
    #expect(throws: ConfinementError.self) { try c.resolve("app/../../outside") }
    // A missing folder does not hide a `..` that climbs out.
    #expect(throws: ConfinementError.self) { try c.resolve("missing/../../outside/x") }
  }

  @Test func absolutePaths() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    #expect(try c.resolve(dir.file("ws/app")) == dir.file("ws/app"))
    #expect(throws: ConfinementError.self) { try c.resolve("/etc/passwd") }
    #expect(throws: ConfinementError.self) { try c.resolve(dir.file("ws") + "-sibling/x") }
  }

  @Test func symlinkToOutsideIsRefused() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    try dir.symlink("ws/app/out", to: dir.file("outside"))
    try dir.symlink("ws/app/rel", to: "../../outside/secret.txt")
    do {
      _ = try c.resolve("app/out/secret.txt")
      Issue.record("expected a refusal")
    } catch {
      #expect(error.description.contains("resolves to '\(dir.file("outside/secret.txt"))'"))
      #expect(error.description.contains("outside the workspace"))
    }
    #expect(throws: ConfinementError.self) { try c.resolve("app/rel") }
    #expect(throws: ConfinementError.self) { try c.resolve("app/out/new-file") }
  }

  @Test func nestedSymlinksInsideAreFollowed() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    try dir.mkdir("ws/real/deep")
    try dir.symlink("ws/hop2", to: "real")
    try dir.symlink("ws/app/hop1", to: "../hop2/deep")
    try dir.symlink("ws/abs", to: dir.file("ws/app/hop1"))
    #expect(try c.resolve("app/hop1/file") == dir.file("ws/real/deep/file"))
    #expect(try c.resolve("abs/../x") == dir.file("ws/real/x"))
  }

  @Test func nonExistingTails() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    #expect(try c.resolve("new/dir/../file.txt") == dir.file("ws/new/file.txt"))
    try dir.symlink("ws/link", to: "app")
    #expect(try c.resolve("link/not/yet") == dir.file("ws/app/not/yet"))
  }

  @Test func relativeToABase() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    #expect(try c.resolve("env", relativeTo: "app") == dir.file("ws/app/env"))
    #expect(try c.resolve("../x", relativeTo: dir.file("ws/app")) == dir.file("ws/x"))
    #expect(throws: ConfinementError.self) { try c.resolve("../../venv-outside", relativeTo: "app") }
    #expect(throws: ConfinementError.self) { try c.resolve("x", relativeTo: "/etc") }
  }

  @Test func finalLinkNotFollowed() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    try dir.symlink("ws/outside-link", to: dir.file("outside"))
    #expect(try c.resolveWithoutFollowingFinalSymlink("outside-link") == dir.file("ws/outside-link"))
    #expect(throws: ConfinementError.self) { try c.resolve("outside-link") }
    // Only the last component is exempt.
    #expect(throws: ConfinementError.self) {
      try c.resolveWithoutFollowingFinalSymlink("outside-link/secret.txt")
    }
    #expect(throws: ConfinementError.self) { try c.resolveWithoutFollowingFinalSymlink("..") }
  }

  @Test func symlinkLoopIsAnError() throws {
    let (dir, c) = try makeLayout()
    defer { dir.remove() }
    try dir.symlink("ws/a", to: "b")
    try dir.symlink("ws/b", to: "a")
    do {
      _ = try c.resolve("a/x")
      Issue.record("expected a refusal")
    } catch {
      #expect(error.reason == .symlinkLoop)
      #expect(error.description.contains("too many symbolic links"))
    }
  }

  @Test func rootIsCanonical() throws {
    let (dir, _) = try makeLayout()
    defer { dir.remove() }
    try dir.symlink("ws-link", to: "ws")
    let c = Confinement(root: dir.file("ws-link"))
    #expect(c.root == dir.file("ws"))
    #expect(try c.resolve("app") == dir.file("ws/app"))
  }
}
