import Foundation
import Testing

@testable import Shared
@testable import Worker

private let ref = AttemptRef(jobID: "7", attempt: 1)

private func file(_ name: String, size: Int64) -> ArtifactFile {
  ArtifactFile(name: name, path: "/ws/" + name, size: size, sha256: String(repeating: "a", count: 64))
}

private func ack(
  _ name: String, _ offset: Int64, complete: Bool = false, error: String? = nil, retryable: Bool = false
)
  -> ArtifactAckMessage
{
  ArtifactAckMessage(
    jobID: "7", attempt: 1, name: name, offset: offset, complete: complete, error: error, retryable: retryable
  )
}

extension Array where Element == ArtifactUpload.Request {
  fileprivate var begins: [ArtifactBeginMessage] {
    compactMap { if case .begin(let message) = $0 { message } else { nil } }
  }
  /// (offset, length) of each chunk.
  fileprivate var chunks: [[Int64]] {
    compactMap {
      if case .chunk(let message, _, let length) = $0 { [message.offset, Int64(length)] } else { nil }
    }
  }
}

/// The upload state machine: begin, chunks from the coordinator's offset, resumption,
/// retry after a checksum mismatch, failure, the rate cap.
struct ArtifactUploadTests {
  @Test func filesGoOneAtATimeInChunksWithinTheWindow() {
    var upload = ArtifactUpload(
      ref: ref, workerID: "w", files: [file("a.bin", size: 10), file("b.txt", size: 0)], chunkSize: 3,
      window: 2)
    var requests = upload.pump(now: 0)
    #expect(requests.begins.map(\.name) == ["a.bin"])
    #expect(requests.begins.first?.count == 2)
    #expect(upload.pump(now: 0).isEmpty, "nothing more until the begin is answered")
    upload.received(ack("a.bin", 0), now: 1)
    requests = upload.pump(now: 1)
    #expect(requests.chunks == [[0, 3], [3, 3]], "two chunks: the window")
    upload.received(ack("a.bin", 3), now: 2)
    #expect(upload.pump(now: 2).chunks == [[6, 3]])
    upload.received(ack("a.bin", 6), now: 3)
    #expect(upload.pump(now: 3).chunks == [[9, 1]])
    upload.received(ack("a.bin", 9), now: 3)
    #expect(upload.pump(now: 3).isEmpty, "the last chunk is out; waiting for completion")
    upload.received(ack("a.bin", 10, complete: true), now: 4)
    // The empty file: a begin and no chunk.
    #expect(upload.pump(now: 4).begins.map(\.name) == ["b.txt"])
    upload.received(ack("b.txt", 0, complete: true), now: 5)
    #expect(upload.outcome == .completed)
  }

  @Test func afterAReconnectItResumesFromWhatTheCoordinatorHolds() {
    var upload = ArtifactUpload(
      ref: ref, workerID: "w", files: [file("a.bin", size: 100)], chunkSize: 10, window: 4)
    _ = upload.pump(now: 0)
    upload.received(ack("a.bin", 0), now: 0)
    #expect(upload.pump(now: 0).chunks.count == 4)
    upload.received(ack("a.bin", 10), now: 1)
    // The connection drops with three chunks in flight; the coordinator had stored two
    // of them (their acknowledgements were lost).
    upload.resume()
    let requests = upload.pump(now: 2)
    #expect(requests.begins.map(\.name) == ["a.bin"], "ask first")
    upload.received(ack("a.bin", 30), now: 2)
    #expect(upload.pump(now: 2).chunks.first == [30, 10], "continues where the coordinator stands")
    // A late answer to a chunk sent before the reconnect changes nothing.
    upload.received(ack("a.bin", 20), now: 3)
    #expect(upload.acked == 30)
  }

  @Test func aChecksumMismatchIsRetriedOnceThenFails() {
    var upload = ArtifactUpload(ref: ref, workerID: "w", files: [file("a.bin", size: 4)], chunkSize: 4)
    _ = upload.pump(now: 0)
    upload.received(ack("a.bin", 0), now: 0)
    _ = upload.pump(now: 0)
    upload.received(ack("a.bin", 0, error: "checksum mismatch", retryable: true), now: 1)
    #expect(upload.outcome == nil)
    #expect(upload.pump(now: 1).begins.count == 1, "starts the file again")
    upload.received(ack("a.bin", 0), now: 1)
    #expect(upload.pump(now: 1).chunks == [[0, 4]])
    upload.received(ack("a.bin", 0, error: "checksum mismatch again", retryable: true), now: 2)
    #expect(upload.outcome == .failed("checksum mismatch again"))
    #expect(upload.pump(now: 3).isEmpty)
  }

  @Test func aRefusalFailsForGood() {
    var upload = ArtifactUpload(ref: ref, workerID: "w", files: [file("a.bin", size: 4)])
    _ = upload.pump(now: 0)
    upload.received(ack("other", 0, error: "not about this file"), now: 0)
    #expect(upload.outcome == nil, "an answer about another file is ignored")
    upload.received(ack("a.bin", 0, error: "over the per-job limit"), now: 0)
    #expect(upload.outcome == .failed("over the per-job limit"))
  }

  @Test func aStalledUploadAsksWhereTheCoordinatorStands() {
    var upload = ArtifactUpload(
      ref: ref, workerID: "w", files: [file("a.bin", size: 100)], chunkSize: 10, window: 1, stallTimeout: 5)
    _ = upload.pump(now: 0)
    upload.received(ack("a.bin", 0), now: 0)
    #expect(upload.pump(now: 0).chunks == [[0, 10]])
    #expect(upload.pump(now: 4).isEmpty)
    _ = upload.pump(now: 6)
    #expect(upload.pump(now: 6).begins.count == 1)
  }

  @Test func theRateCapSpacesTheChunks() {
    // 1000 bytes/s: chunks of 4096 bytes at most (the floor), one per ~4 s.
    var upload = ArtifactUpload(
      ref: ref, workerID: "w", files: [file("a.bin", size: 20_000)], rate: 1000, chunkSize: 1 << 20, window: 8
    )
    #expect(upload.chunkSize == 4096)
    _ = upload.pump(now: 0)
    upload.received(ack("a.bin", 0), now: 0)
    #expect(upload.pump(now: 0).chunks == [[0, 4096]])
    upload.received(ack("a.bin", 4096), now: 0.1)
    #expect(upload.pump(now: 1).isEmpty, "4096 bytes sent in 1 s is over 1000 bytes/s")
    #expect(upload.pump(now: 4.2).chunks == [[4096, 4096]])
    #expect(upload.bytesSent == 8192)
  }
}

/// The worker core around the uploads: only after every file is stored comes cleanup;
/// a reconnect resumes; a stale attempt abandons its upload.
struct WorkerCoreArtifactTests {
  static let advert = WorkerAdvert(
    id: "w-1", name: "edge",
    host: HostInfo(cpuCores: 2, memoryTotal: 1 << 33, platform: "linux", arch: "x64", hostname: "edge"),
    gpus: [], diskFree: 1 << 40, slots: 1, labels: [:])

  static func registered(now: Double = 100) -> WorkerCore {
    var core = WorkerCore(advert: advert, heartbeatInterval: 1, liveness: 3, now: now)
    core.start(now: now)
    core.received(
      WireEnvelope(.registered, RegisteredMessage(heartbeatInterval: 1, liveness: 3, stopAttempts: [])),
      now: now)
    let job = AssignedJob(
      jobID: "7", attempt: 1, name: "j", entry: "a.json", args: .object(JSONObject()), gpuIndices: [],
      requirements: Requirements(), timeoutSeconds: nil, artifacts: ["*.bin"])
    core.received(WireEnvelope(.assign, AssignMessage(job: job), payload: [Data()]), now: now)
    core.jobEnded(ref, state: .succeeded, exitCode: 0, error: nil, locals: nil, now: now)
    _ = core.takeActions()
    return core
  }

  static func done(_ actions: [WorkerCore.Action]) -> [WorkerCore.ArtifactsResult] {
    actions.compactMap { if case .artifactsDone(_, let result) = $0 { result } else { nil } }
  }

  static func sentTypes(_ actions: [WorkerCore.Action]) -> [MessageType] {
    actions.compactMap { if case .send(let envelope) = $0 { envelope.type } else { nil } }
  }

  @Test func cleanupWaitsForEveryFileToBeStored() {
    var core = Self.registered()
    core.startUpload(ref, files: [file("a.bin", size: 5)], now: 100)
    var actions = core.takeActions()
    #expect(Self.sentTypes(actions) == [.artifactBegin])
    core.received(WireEnvelope(.artifactAck, ack("a.bin", 0)), now: 100)
    actions = core.takeActions()
    #expect(
      actions.contains {
        if case .sendArtifactChunk(let message, let path, let length) = $0 {
          return message.offset == 0 && path == "/ws/a.bin" && length == 5
        }
        return false
      })
    #expect(Self.done(actions).isEmpty)
    core.received(WireEnvelope(.artifactAck, ack("a.bin", 5, complete: true)), now: 101)
    #expect(Self.done(core.takeActions()) == [.stored(files: 1, bytes: 5)])
  }

  @Test func noFilesMeansCleanupAtOnce() {
    var core = Self.registered()
    core.startUpload(ref, files: [], now: 100)
    #expect(Self.done(core.takeActions()) == [.stored(files: 0, bytes: 0)])
  }

  @Test func aReRegistrationResendsTheBeginAndAFailureIsReported() {
    var core = Self.registered()
    core.startUpload(ref, files: [file("a.bin", size: 5)], now: 100)
    _ = core.takeActions()
    core.received(WireEnvelope(.reregister, ReregisterMessage(reason: "restarted")), now: 101)
    #expect(Self.sentTypes(core.takeActions()) == [.register])
    core.received(
      WireEnvelope(.registered, RegisteredMessage(heartbeatInterval: 1, liveness: 3, stopAttempts: [])),
      now: 101)
    _ = core.takeActions()
    core.tick(now: 101.05)
    #expect(Self.sentTypes(core.takeActions()).contains(.artifactBegin))
    core.received(WireEnvelope(.artifactAck, ack("a.bin", 0, error: "over the pool limit")), now: 102)
    #expect(Self.done(core.takeActions()) == [.failed("over the pool limit")])
  }

  @Test func aStaleAttemptAbandonsItsUpload() {
    var core = Self.registered()
    core.startUpload(ref, files: [file("a.bin", size: 5)], now: 100)
    _ = core.takeActions()
    core.received(
      WireEnvelope(.stop, StopMessage(jobID: "7", attempt: 1, reason: "replaced", stale: true)), now: 101)
    #expect(Self.done(core.takeActions()) == [.abandoned])
  }

  @Test func aFileThatCannotBeReadFailsTheUpload() {
    var core = Self.registered()
    core.startUpload(ref, files: [file("a.bin", size: 5)], now: 100)
    core.received(WireEnvelope(.artifactAck, ack("a.bin", 0)), now: 100)
    _ = core.takeActions()
    core.artifactReadFailed(ref, reason: "vanished", now: 100)
    #expect(Self.done(core.takeActions()) == [.failed("vanished")])
  }
}

/// Globs relative to the workspace, confined to it.
struct ArtifactCollectorTests {
  static func workspace() throws -> String {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pinpool-art-\(UUID().uuidString)"
    )
    .path
    try FileManager.default.createDirectory(
      atPath: root + "/app/outputs/day1", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: root + "/env/lib", withIntermediateDirectories: true)
    for (path, text) in [
      "app/outputs/a.mp4": "a", "app/outputs/day1/b.mp4": "bb", "app/outputs/day1/notes.txt": "n",
      "env/lib/x.mp4": "x", "top.log": "log",
    ] {
      try text.write(toFile: root + "/" + path, atomically: true, encoding: .utf8)
    }
    return root
  }

  @Test func globsMatchWithinTheWorkspace() throws {
    let root = try Self.workspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let (matches, warnings) = ArtifactCollector.match(
      globs: ["app/outputs/**/*.mp4", "*.log"], workspace: root)
    #expect(matches.map(\.name) == ["app/outputs/a.mp4", "app/outputs/day1/b.mp4", "top.log"])
    #expect(warnings.isEmpty)
    // A folder takes everything below it; `?` and classes work within a component.
    #expect(
      ArtifactCollector.match(globs: ["app/outputs/day1"], workspace: root).matches.map(\.name) == [
        "app/outputs/day1/b.mp4", "app/outputs/day1/notes.txt",
      ])
    #expect(
      ArtifactCollector.match(globs: ["to?.[lx]og"], workspace: root).matches.map(\.name) == ["top.log"])
    #expect(ArtifactCollector.match(globs: ["**/*.mp4"], workspace: root).matches.count == 3)
    // The worker's marker of a kept workspace is never an artifact.
    try KeptWorkspaces.keep(root, until: 1)
    #expect(
      !ArtifactCollector.match(globs: ["**", ".pinpool-keep-until"], workspace: root).matches.contains {
        $0.name == ".pinpool-keep-until"
      })
  }

  @Test func nothingOutsideTheWorkspaceIsTaken() throws {
    let root = try Self.workspace()
    let outside = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pinpool-secret-\(UUID().uuidString)"
    )
    .path
    defer {
      try? FileManager.default.removeItem(atPath: root)
      try? FileManager.default.removeItem(atPath: outside)
    }
    try "secret".write(toFile: outside, atomically: true, encoding: .utf8)
    try FileManager.default.createSymbolicLink(atPath: root + "/leak.mp4", withDestinationPath: outside)
    try FileManager.default.createSymbolicLink(atPath: root + "/etc", withDestinationPath: "/etc")
    try FileManager.default.createSymbolicLink(atPath: root + "/inside.mp4", withDestinationPath: "top.log")
    let (matches, warnings) = ArtifactCollector.match(
      globs: ["*.mp4", "etc/*", "../*", "/etc/passwd"], workspace: root)
    #expect(matches.map(\.name) == ["inside.mp4"], "a link to a file inside is fine")
    #expect(matches.first?.path.hasSuffix("/top.log") == true)
    #expect(warnings.contains { $0.contains("leak.mp4") && $0.contains("outside the workspace") })
    #expect(warnings.contains { $0.contains("'etc/*' matched no file") }, "links to folders are not followed")
    #expect(warnings.contains { $0.contains("'../*' is refused") })
    #expect(warnings.contains { $0.contains("'/etc/passwd' is refused") })
  }

  @Test func collectHashesEachFile() throws {
    let root = try Self.workspace()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let (files, warnings) = ArtifactCollector.collect(
      globs: ["app/outputs/day1/b.mp4", "missing/*"], workspace: root)
    #expect(files.map(\.name) == ["app/outputs/day1/b.mp4"])
    #expect(files.first?.size == 2)
    #expect(files.first?.sha256 == Data("bb".utf8).sha256Hex)
    #expect(warnings == ["artifact glob 'missing/*' matched no file"])
  }
}
