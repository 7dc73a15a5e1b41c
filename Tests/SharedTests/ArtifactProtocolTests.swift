import Foundation
import Testing

@testable import Shared

/// Artifact names and globs, and the messages on the wire.
struct ArtifactProtocolTests {
  @Test(arguments: [
    ("", "empty"), ("/etc/passwd", "absolute"), ("../x", "'..'"), ("a/../../x", "'..'"),
    ("a//b", "empty path"),
    ("a/", "empty path"), ("./a", "'.'"), ("a\u{1}b", "control"), ("a\\b", "backslash"),
    (String(repeating: "x", count: 300), "255"),
  ])
  func badNamesAreRefusedWithTheReason(name: String, reason: String) {
    #expect(
      ArtifactName.problem(name)?.contains(reason) == true,
      "\(name): \(String(describing: ArtifactName.problem(name)))")
    #expect(throws: ArtifactError.self) { try ArtifactName.validate(name) }
  }

  @Test func goodNamesPass() {
    for name in ["clip.mp4", "app/outputs/day 1/clip.mp4", ".hidden", "ünïcode/файл.txt"] {
      #expect(ArtifactName.problem(name) == nil, "\(name)")
    }
  }

  @Test func globsMustStayInTheWorkspace() throws {
    try ArtifactGlob.validate(["app/outputs/**/*.mp4", "*.log", "out/[ab]?.png"])
    #expect(ArtifactGlob.problem("/abs/*")?.contains("absolute") == true)
    #expect(ArtifactGlob.problem("a/../../b")?.contains("'..'") == true)
    #expect(ArtifactGlob.problem("")?.contains("empty") == true)
    #expect(
      throws: ArtifactError.badGlob(
        "../x", "it has a '..' component; artifacts must lie inside the workspace")
    ) {
      try ArtifactGlob.validate(["ok", "../x"])
    }
  }

  @Test func messagesRoundTripWithTheirPayload() throws {
    let chunk = ArtifactChunkMessage(
      workerID: "w", jobID: "3", attempt: 2, name: "a.bin", offset: 1 << 20, size: 3 << 20,
      sha256: String(repeating: "c", count: 64))
    let bytes = Data((0..<255).map { UInt8($0) })
    let envelope = try WireEnvelope(frames: WireEnvelope(.artifactChunk, chunk, payload: [bytes]).frames)
    #expect(envelope.type == .artifactChunk)
    #expect(try envelope.decode(ArtifactChunkMessage.self) == chunk)
    #expect(envelope.payload == [bytes])
    let ack = ArtifactAckMessage(
      jobID: "3", attempt: 2, name: "a.bin", offset: 7, complete: false, error: "x")
    #expect(
      try WireEnvelope(frames: WireEnvelope(.artifactAck, ack).frames).decode(ArtifactAckMessage.self) == ack)
  }

  @Test func aFileDigestMatchesTheInMemoryOne() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pinpool-digest-\(UUID().uuidString)"
    )
    .path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let data = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    try data.write(to: URL(fileURLWithPath: path))
    let digest = try FileDigest.sha256(path: path)
    #expect(digest.size == 3_000_000)
    #expect(digest.sha256 == data.sha256Hex)
    #expect(throws: FileDigestError.self) { try FileDigest.sha256(path: path + ".missing") }
  }

  @Test func aScriptsArtifactsMustBeAListOfGlobsInsideTheWorkspace() throws {
    let good = try Script.load(text: #"{"run": [], "artifacts": ["out/*.mp4", "notes.txt"]}"#, file: "a.json")
    #expect(good.artifacts == ["out/*.mp4", "notes.txt"])
    #expect(try Script.load(text: #"{"run": []}"#, file: "a.json").artifacts == [])
    for (text, expected) in [
      (#"{"run": [], "artifacts": "out.mp4"}"#, "must be a list of globs"),
      (#"{"run": [], "artifacts": [3]}"#, "lists globs (strings), got number"),
      (#"{"run": [], "artifacts": ["../x"]}"#, "artifact glob '../x' is refused"),
    ] {
      #expect {
        try Script.load(text: text, file: "a.json")
      } throws: { error in
        "\(error)".contains(expected) && "\(error)".contains("a.json")
      }
    }
  }
}
