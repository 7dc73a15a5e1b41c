import Foundation
import Testing

@testable import Shared

private let GB: Int64 = 1_000_000_000
private let GiB: Int64 = 1 << 30

/// JSON with sorted keys, to compare values whose types are Codable but not Equatable.
private func canonical<T: Encodable>(_ value: T) throws -> String {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys]
  return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Frames out, frames in, header decoded: the value must come back unchanged.
private func roundTrip<T: Codable>(_ type: MessageType, _ value: T, payload: [Data] = []) throws -> T {
  let frames = WireEnvelope(type, value, payload: payload).frames
  #expect(frames.count == 3 + payload.count)
  #expect(frames[0] == Data(WireEnvelope.protocolID.utf8))
  #expect(frames[1] == Data(type.rawValue.utf8))
  let parsed = try WireEnvelope(frames: frames)
  #expect(parsed.type == type)
  #expect(parsed.payload == payload)
  let decoded = try parsed.decode(T.self)
  #expect(try canonical(decoded) == canonical(value))
  return decoded
}

private let gpu = GPU(
  index: 1, vendor: .nvidia, model: "NVIDIA GeForce RTX 4090", uuid: "GPU-1", vramTotal: 24 * GiB,
  vramFree: 20 * GiB, computeCapability: "8.9", driver: "550.1")
private let advert = WorkerAdvert(
  id: "w-1", name: "gpu-box",
  host: HostInfo(cpuCores: 16, memoryTotal: 64 * GiB, platform: "linux", arch: "x64", hostname: "gpu-box"),
  gpus: [gpu], diskFree: 500 * GB, slots: 2, labels: ["site": "studio"])
private let ref = AttemptRef(jobID: "12", attempt: 3)
private let locals = JSONValue.object(
  JSONObject([("url", .string("http://127.0.0.1:7860")), ("n", .number(2))]))

@Suite struct WireEnvelopeTests {
  @Test func workerMessagesRoundTrip() throws {
    let register = try roundTrip(.register, RegisterMessage(worker: advert, activeAttempts: [ref]))
    #expect(register.worker == advert)
    #expect(register.activeAttempts == [ref])
    let registered = try roundTrip(
      .registered, RegisteredMessage(heartbeatInterval: 2.5, liveness: 4, stopAttempts: [ref]))
    #expect(registered.heartbeatInterval == 2.5)
    #expect(registered.stopAttempts == [ref])
    let beat = try roundTrip(.heartbeat, HeartbeatMessage(workerID: "w-1", gpus: [gpu], diskFree: 7))
    #expect(beat.gpus == [gpu])
    #expect(beat.diskFree == 7)
    let bare = try roundTrip(.heartbeat, HeartbeatMessage(workerID: "w-1"))
    #expect(bare.gpus == nil)
    _ = try roundTrip(.reregister, ReregisterMessage(reason: "who are you"))

    let job = AssignedJob(
      jobID: "12", attempt: 3, name: "render[4]", entry: "install.json",
      args: .object(JSONObject([("index", .number(4))])), gpuIndices: [0, 1],
      requirements: Requirements(gpus: 2, gpuVendor: .nvidia, vram: 20 * GB, labels: ["a": "b"]),
      timeoutSeconds: 3600, artifacts: ["out/**/*.mp4"])
    let bundle = JobBundle(files: [.init(path: "install.json", mode: 0o644, data: Data("{}".utf8))]).encoded()
    let assign = try roundTrip(.assign, AssignMessage(job: job), payload: [bundle])
    #expect(assign.job == job)
    #expect(assign.job.ref == ref)

    let lines = [
      LogLine(seq: 1, stream: .stdout, time: 1.5, line: "héllo ✓"),
      LogLine(seq: 2, stream: .stderr, time: 2, line: ""),
      LogLine(seq: 3, stream: .pinpool, time: 3, line: "step 1/2: shell.run"),
    ]
    let chunk = LogChunk(lines.map { ($0.stream, $0.time, $0.line) })
    let sent = WireEnvelope.logBatch(workerID: "w-1", jobID: "12", attempt: 3, firstSeq: 1, chunk: chunk)
    let (batch, received) = try WireEnvelope(frames: sent.frames).decodeLogBatch()
    #expect(batch == LogBatchMessage(workerID: "w-1", jobID: "12", attempt: 3, firstSeq: 1, count: 3))
    #expect(received.lines(firstSeq: batch.firstSeq) == lines)
    let ack = try roundTrip(.logAck, LogAckMessage(jobID: "12", attempt: 3, upTo: 3))
    #expect(ack.upTo == 3)
    let progress = try roundTrip(
      .progress,
      ProgressMessage(
        workerID: "w-1", jobID: "12", attempt: 3, state: .serving, stepIndex: 1, stepCount: 2, locals: locals,
        notification: "ready"))
    #expect(progress.state == .serving)
    #expect(progress.locals == locals)
    let finished = try roundTrip(
      .finished,
      FinishedMessage(
        workerID: "w-1", jobID: "12", attempt: 3, state: .failed, exitCode: -9, error: "killed", locals: nil,
        lastLogSeq: 3))
    #expect(finished.exitCode == -9)
    #expect(finished.locals == nil)
    #expect(finished.tail == nil)
    // A result that carries its log's last lines, as a batch does.
    let ending = FinishedMessage(
      workerID: "w-1", jobID: "12", attempt: 3, state: .succeeded, exitCode: 0, error: nil, locals: nil,
      lastLogSeq: 3, tail: LogTail(firstSeq: 1, count: 3))
    let (withTail, tailLines) = try WireEnvelope(frames: WireEnvelope.finished(ending, tail: chunk).frames)
      .decodeFinished()
    #expect(withTail.tail == LogTail(firstSeq: 1, count: 3))
    #expect(tailLines?.lines(firstSeq: 1) == lines)
    let stored = try roundTrip(
      .reportAck, ReportAckMessage(jobID: "12", attempt: 3, kind: .finished, logUpTo: 3))
    #expect(stored.logUpTo == 3)
    let cleanup = try roundTrip(
      .cleanup,
      CleanupMessage(
        workerID: "w-1", jobID: "12", attempt: 3, state: .kept, bytesFreed: 0, diskFreeAfter: 9,
        reason: "busy"))
    #expect(cleanup.state == .kept)
    for kind in [ReportAckMessage.Kind.finished, .cleanup] {
      #expect(try roundTrip(.reportAck, ReportAckMessage(jobID: "12", attempt: 3, kind: kind)).kind == kind)
    }
    let stop = try roundTrip(.stop, StopMessage(jobID: "12", attempt: 3, reason: "replaced", stale: true))
    #expect(stop.stale)
  }

  @Test func jsonValuesOfEveryKindDecodeAsWhatTheyAre() throws {
    let text = #"{"o":{"n":null,"t":true,"f":false,"i":7,"d":-1.5,"s":"x","a":[1,"y",[],{}]},"e":{},"l":[]}"#
    let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    #expect(
      value
        == .object(
          JSONObject([
            (
              "o",
              .object(
                JSONObject([
                  ("n", .null), ("t", .bool(true)), ("f", .bool(false)), ("i", .number(7)),
                  ("d", .number(-1.5)),
                  ("s", .string("x")),
                  ("a", .array([.number(1), .string("y"), .array([]), .object(JSONObject())])),
                ]))
            ),
            ("e", .object(JSONObject())), ("l", .array([])),
          ])))
    // A header field of the wrong kind is still refused with its place named.
    let refused = WireEnvelope(
      type: .progress,
      header: Data(
        #"{"workerID":"w","jobID":"1","attempt":1,"state":"running","stepIndex":0,"stepCount":1,"locals":{"a":[1,}}"#
          .utf8))
    #expect(throws: WireError.self) { try refused.decode(ProgressMessage.self) }
    // A duration that is not one is refused in a result's step report.
    let negative = FinishedMessage(
      workerID: "w", jobID: "1", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
      lastLogSeq: 0, progress: WithheldProgress(stepIndex: 0, stepCount: 1, runningFor: -1))
    #expect(throws: WireError.self) { try WireEnvelope(.finished, negative).decode(FinishedMessage.self) }
  }

  @Test func aResultsTailMustMatchItsLines() throws {
    let chunk = LogChunk([(.stdout, 1, "a"), (.stdout, 2, "b")])
    func result(_ tail: LogTail?) -> FinishedMessage {
      FinishedMessage(
        workerID: "w-1", jobID: "12", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: 2, tail: tail)
    }
    func decoded(_ message: FinishedMessage, _ payload: [Data]) throws(WireError) {
      _ = try WireEnvelope(.finished, message, payload: payload).decodeFinished()
    }
    #expect(throws: WireError.self, "a tail without its lines") {
      try decoded(result(LogTail(firstSeq: 1, count: 2)), [])
    }
    #expect(throws: WireError.self, "lines without a tail") { try decoded(result(nil), [chunk.bytes]) }
    #expect(throws: WireError.self, "fewer lines than the tail says") {
      try decoded(result(LogTail(firstSeq: 1, count: 3)), [chunk.bytes])
    }
    // A tail that does not end the log is refused by the receiver's checks.
    let short = result(LogTail(firstSeq: 1, count: 1))
    #expect(throws: WireCheckError.self) { try short.check() }
    try result(LogTail(firstSeq: 1, count: 2)).check()
  }

  @Test func clientMessagesRoundTrip() throws {
    let submit = try roundTrip(
      .submit,
      SubmitRequest(
        requestID: "r1", name: "sweep", entry: "install.json", args: .object(JSONObject()),
        requirements: Requirements(vram: 24 * GB), priority: 5, retries: 2, timeoutSeconds: nil,
        artifacts: [], arrayIndices: [1, 5, 9]),
      payload: [Data([1, 2, 3])])
    #expect(submit.arrayIndices == [1, 5, 9])
    #expect(submit.requirements == Requirements(vram: 24 * GB))
    _ = try roundTrip(.reply, Reply(requestID: "r1", result: SubmitReply(id: "1", ids: ["1", "2"])))
    _ = try roundTrip(.status, JobRequest(requestID: "r2", jobID: "1"))
    _ = try roundTrip(.jobs, JobsRequest(requestID: "r3", state: .running, worker: "gpu-box", limit: 10))
    _ = try roundTrip(.jobs, JobsRequest(requestID: "r3", state: nil, worker: nil, limit: nil))
    _ = try roundTrip(.logs, LogsRequest(requestID: "r4", jobID: "1", since: 10, limit: 100))
    _ = try roundTrip(
      .reply,
      Reply(
        requestID: "r4",
        result: LogsReply(
          lines: [
            LogLineView(seq: 1, stream: .stdout, time: "2026-01-01T00:00:00.000Z", line: "x", attempt: 1)
          ],
          state: .running, complete: false)))
    _ = try roundTrip(.workers, WorkersRequest(requestID: "r5"))
    _ = try roundTrip(.cancel, CancelRequest(requestID: "r6", jobIDs: ["1", "2"]))
    _ = try roundTrip(
      .reply, Reply(requestID: "r6", result: CancelReply(cancelled: ["1"], alreadyFinal: ["2"])))
    _ = try roundTrip(.drain, DrainRequest(requestID: "r7", worker: "edge-3"))
    _ = try roundTrip(.undrain, DrainRequest(requestID: "r8", worker: "edge-3"))
    _ = try roundTrip(.error, ErrorReply(requestID: nil, message: "no"))
    let view = WorkerView(
      id: "w-1", name: "gpu-box", state: .draining, gpus: [GPUView(gpu)], diskFree: 1, slots: 2, running: 1,
      lastSeen: "2026-01-01T00:00:00.000Z", labels: [:], cpuCores: 4, memoryTotal: 8)
    #expect(try roundTrip(.reply, Reply(requestID: "r9", result: [view])).result == [view])
    // Any request's id can be read without knowing its type.
    let any = try WireEnvelope(
      frames: WireEnvelope(.cancel, CancelRequest(requestID: "r6", jobIDs: [])).frames)
    #expect(try any.decode(RequestIDOnly.self).requestID == "r6")
  }

  @Test func everyMessageTypeParses() throws {
    for type in MessageType.allCases {
      let parsed = try WireEnvelope(frames: [
        Data(WireEnvelope.protocolID.utf8), Data(type.rawValue.utf8), Data("{}".utf8),
      ])
      #expect(parsed.type == type)
      #expect(parsed.header == Data("{}".utf8))
      #expect(parsed.payload.isEmpty)
    }
  }

  @Test func payloadFramesAreKeptIncludingEmptyOnes() throws {
    let big = Data(repeating: 0xAB, count: 1 << 20)
    let frames = WireEnvelope(.assign, ReregisterMessage(reason: "x"), payload: [Data(), big, Data()]).frames
    let parsed = try WireEnvelope(frames: frames)
    #expect(parsed.payload.count == 3)
    #expect(parsed.payload[0].isEmpty)
    #expect(parsed.payload[1] == big)
    #expect(parsed.payload[2].isEmpty)
  }

  @Test func tooFewFrames() {
    #expect(throws: WireError.tooFewFrames(0)) { try WireEnvelope(frames: []) }
    #expect(throws: WireError.tooFewFrames(2)) {
      try WireEnvelope(frames: [Data(WireEnvelope.protocolID.utf8), Data("register".utf8)])
    }
  }

  @Test func wrongProtocolVersion() {
    #expect(throws: WireError.unknownProtocol("PINPOOL/1")) {
      try WireEnvelope(frames: [Data("PINPOOL/1".utf8), Data("register".utf8), Data("{}".utf8)])
    }
    #expect(throws: WireError.unknownProtocol("")) {
      try WireEnvelope(frames: [Data(), Data("register".utf8), Data("{}".utf8)])
    }
    #expect(throws: WireError.unknownProtocol("<2 bytes of binary>")) {
      try WireEnvelope(frames: [Data([0xFF, 0xFE]), Data("register".utf8), Data("{}".utf8)])
    }
    // The version before this one: a `finished` it sent could carry no tail.
    #expect(throws: WireError.unknownProtocol("PINPOOL/2")) {
      try WireEnvelope(frames: [Data("PINPOOL/2".utf8), Data("register".utf8), Data("{}".utf8)])
    }
    let error = WireError.unknownProtocol("PINPOOL/2")
    #expect(error.description.contains(WireEnvelope.protocolID))
  }

  @Test func unknownMessageType() {
    #expect(throws: WireError.unknownType("teleport")) {
      try WireEnvelope(frames: [Data(WireEnvelope.protocolID.utf8), Data("teleport".utf8), Data("{}".utf8)])
    }
    #expect(throws: WireError.unknownType("Register")) {
      try WireEnvelope(frames: [Data(WireEnvelope.protocolID.utf8), Data("Register".utf8), Data("{}".utf8)])
    }
  }

  @Test func malformedHeaders() throws {
    func envelope(_ header: String) throws -> WireEnvelope {
      try WireEnvelope(frames: [
        Data(WireEnvelope.protocolID.utf8), Data("heartbeat".utf8), Data(header.utf8),
      ])
    }
    #expect(throws: WireError.malformedHeader(type: "heartbeat", detail: "not valid JSON")) {
      try envelope("{not json").decode(HeartbeatMessage.self)
    }
    #expect(throws: WireError.malformedHeader(type: "heartbeat", detail: "missing field 'workerID'")) {
      try envelope("{}").decode(HeartbeatMessage.self)
    }
    let mismatch = #expect(throws: WireError.self) {
      try envelope(#"{"workerID": 5}"#).decode(HeartbeatMessage.self)
    }
    guard case .malformedHeader(let type, let detail) = mismatch else {
      Issue.record("expected malformedHeader, got \(String(describing: mismatch))")
      return
    }
    #expect(type == "heartbeat")
    #expect(detail.hasPrefix("workerID: expected String"))
    let nested = #expect(throws: WireError.self) {
      try WireEnvelope(
        frames: [
          Data(WireEnvelope.protocolID.utf8), Data("register".utf8),
          Data(#"{"worker": {"id": "w"}, "activeAttempts": []}"#.utf8),
        ]
      ).decode(RegisterMessage.self)
    }
    #expect(nested?.description.contains("missing field 'name' in worker") == true)
  }
}

@Suite struct JobBundleTests {
  private let bundle = JobBundle(files: [
    .init(path: "install.json", mode: 0o644, data: Data(#"{"run": []}"#.utf8)),
    .init(path: "app/run.sh", mode: 0o755, data: Data("#!/bin/sh\necho hi\n".utf8)),
    .init(path: "empty.txt", mode: 0o600, data: Data()),
    .init(path: "données/é.json", mode: 0o644, data: Data([0, 1, 2, 255])),
  ])

  @Test func roundTrip() throws {
    let encoded = bundle.encoded()
    #expect(encoded.prefix(4) == Data("PPB1".utf8))
    let decoded = try JobBundle(decoding: encoded)
    #expect(decoded == bundle)
    #expect(decoded.file("app/run.sh")?.mode == 0o755)
    #expect(decoded.file("missing") == nil)
    #expect(decoded.totalBytes == bundle.files.reduce(0) { $0 + $1.data.count })
    #expect(try JobBundle(decoding: JobBundle(files: []).encoded()).files.isEmpty)
  }

  @Test func largeFileRoundTrips() throws {
    let big = JobBundle(files: [
      .init(path: "model.bin", mode: 0o644, data: Data(repeating: 7, count: 3 << 20))
    ])
    #expect(try JobBundle(decoding: big.encoded()) == big)
  }

  @Test func everyTruncationIsDetected() {
    let encoded = bundle.encoded()
    for length in 0..<encoded.count {
      let error = #expect(throws: BundleError.self) { try JobBundle(decoding: encoded.prefix(length)) }
      guard case .corrupt(let why) = error else {
        Issue.record("length \(length): expected corrupt, got \(String(describing: error))")
        continue
      }
      #expect(why.hasPrefix("truncated") || why.contains("claims"), "length \(length): \(why)")
    }
  }

  @Test func badMagicAndTrailingBytes() {
    var wrong = bundle.encoded()
    wrong[0] = UInt8(ascii: "X")
    let magic = #expect(throws: BundleError.self) { try JobBundle(decoding: wrong) }
    #expect(magic?.description == "corrupt bundle: not a bundle (bad magic)")
    let trailing = #expect(throws: BundleError.self) { try JobBundle(decoding: bundle.encoded() + Data([0])) }
    #expect(trailing?.description == "corrupt bundle: 1 trailing bytes")
  }

  @Test func hugeSizeClaimsAreRefused() {
    // count 1, path "a", mode, then a size far beyond the data.
    var data = Data("PPB1".utf8)
    data.append(contentsOf: [1, 0, 0, 0, 1, 0, 0, 0, UInt8(ascii: "a"), 0xA4, 0x01])
    data.append(contentsOf: [UInt8](repeating: 0xFF, count: 8))
    let error = #expect(throws: BundleError.self) { try JobBundle(decoding: data) }
    guard case .corrupt(let why) = error else {
      Issue.record("expected corrupt, got \(String(describing: error))")
      return
    }
    #expect(why.contains("claims"))
    var many = Data("PPB1".utf8)
    many.append(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF])
    let count = #expect(throws: BundleError.self) { try JobBundle(decoding: many) }
    #expect(count?.description.contains("more than a bundle may hold") == true)
  }

  @Test(arguments: ["../evil", "a/../../b", "..", "/etc/passwd", "a//b", "", "a/", "./../x", "x\0y"])
  func pathsThatLeaveTheBundleAreRefused(path: String) {
    let encoded = JobBundle(files: [.init(path: path, mode: 0o644, data: Data("x".utf8))]).encoded()
    let error = #expect(throws: BundleError.self) { try JobBundle(decoding: encoded) }
    guard case .badPath(let bad) = error else {
      Issue.record("\(path.debugDescription): expected badPath, got \(String(describing: error))")
      return
    }
    #expect(bad == path)
    #expect(throws: BundleError.self) { try JobBundle.checkPath(path) }
  }

  @Test(arguments: ["install.json", "a/b/c.txt", ".hidden", "a/.b/..c", "with space.json", "..."])
  func ordinaryRelativePathsAreAccepted(path: String) throws {
    try JobBundle.checkPath(path)
  }
}

@Suite struct ByteSizeTests {
  @Test(arguments: [
    ("24GB", 24 * GB), ("24GiB", 24 * GiB), ("500M", 500 << 20), ("500MB", 500_000_000),
    ("1.5GB", 1_500_000_000), (" 10 KB ", 10_000), ("10kib", 10_240), ("0", 0), ("100", 100), ("7B", 7),
    ("2T", 2 << 40), ("2TB", 2_000_000_000_000), ("1g", GiB), ("80gb", 80 * GB),
  ])
  func parses(text: String, bytes: Int64) throws {
    #expect(try ByteSize(parsing: text).bytes == bytes)
  }

  @Test(arguments: [
    "", "GB", "abc", "-5GB", "24XB", "1e3", "1.2.3GB", "GB24", "24 parsecs", "99999999TB", ".",
  ])
  func refusesBadInput(text: String) {
    let error = #expect(throws: ByteSizeError.self) { try ByteSize(parsing: text) }
    #expect(error?.text == text)
    #expect(error?.description.contains("24GB") == true)
  }

  @Test func descriptions() throws {
    #expect(ByteSize(bytes: 24 * GiB).description == "24 GiB")
    #expect(ByteSize(bytes: 512).description == "512 B")
    #expect(ByteSize(bytes: 1536).description == "1.5 KiB")
    #expect(ByteSize(bytes: 80 * GB).decimalDescription == "80 GB")
    #expect(ByteSize(bytes: 24 * GiB).decimalDescription == "24 GiB")
    #expect(ByteSize(bytes: 500_000_000).decimalDescription == "500 MB")
    #expect(try ByteSize(parsing: "24GB") < ByteSize(parsing: "24GiB"))
  }

  @Test func codableAsBareNumber() throws {
    let data = try JSONEncoder().encode([ByteSize(bytes: 42)])
    #expect(String(decoding: data, as: UTF8.self) == "[42]")
    #expect(try JSONDecoder().decode([ByteSize].self, from: data) == [ByteSize(bytes: 42)])
  }
}

@Suite struct GPUDeclarationTests {
  @Test func parsesVendorModelAndVRAM() throws {
    let gpu = try GPU(declaration: "nvidia:NVIDIA GeForce RTX 4090:24GiB", index: 2)
    #expect(gpu.index == 2)
    #expect(gpu.vendor == .nvidia)
    #expect(gpu.model == "NVIDIA GeForce RTX 4090")
    #expect(gpu.vramTotal == 24 * GiB)
    #expect(gpu.vramFree == 24 * GiB)
    let amd = try GPU(declaration: "AMD:Instinct:MI300X:192GB", index: 0)
    #expect(amd.vendor == .amd)
    #expect(amd.model == "Instinct:MI300X")
    #expect(amd.vramTotal == 192 * GB)
  }

  @Test(arguments: [
    ("nvidia:24GB", "expected vendor:model:vram"),
    ("quantum:Q1:24GB", "unknown vendor 'quantum'"),
    ("nvidia::24GB", "the model is empty"),
    ("nvidia:A100:lots", "invalid size 'lots'"),
    ("", "expected vendor:model:vram"),
  ])
  func refusesBadDeclarations(text: String, reason: String) {
    let error = #expect(throws: GPUDeclarationError.self) { try GPU(declaration: text, index: 0) }
    #expect(error?.text == text)
    #expect(error?.reason.contains(reason) == true, "\(String(describing: error?.reason))")
  }
}

@Suite struct RequirementsParsingTests {
  @Test func absentOrNullMeansNothing() throws {
    #expect(try Requirements(resources: nil) == Requirements())
    #expect(try Requirements(resources: .null) == Requirements())
    #expect(try Requirements(resources: .object(JSONObject())) == Requirements())
  }

  @Test func fullBlock() throws {
    let resources: JSONValue = [
      "gpus": 2, "gpu": "NVIDIA", "vram": "60GB", "disk": "120GB", "memory": 1024,
      "labels": ["site": "studio"], "future": true,
    ]
    let requirements = try Requirements(resources: resources)
    #expect(
      requirements
        == Requirements(
          gpus: 2, gpuVendor: .nvidia, vram: 60 * GB, disk: 120 * GB, memory: 1024, labels: ["site": "studio"]
        ))
    #expect(requirements.effectiveGPUCount == 2)
    #expect(
      requirements.summary == "2 nvidia GPUs with ≥ 60 GB free, \(ByteSize(bytes: 120 * GB)) disk, "
        + "\(ByteSize(bytes: 1024)) memory, label site=studio")
  }

  @Test func vramAloneMeansOneGPU() throws {
    let requirements = try Requirements(resources: ["vram": "80GB"])
    #expect(requirements.gpus == 0)
    #expect(requirements.effectiveGPUCount == 1)
    #expect(requirements.summary == "1 GPU with ≥ 80 GB free")
    #expect(Requirements().summary == "a free slot")
  }

  @Test(
    arguments: [
      (JSONValue.string("lots"), "resources"),
      (["gpus": -1], "resources.gpus"),
      (["gpus": 1.5], "resources.gpus"),
      (["gpus": "two"], "resources.gpus"),
      (["gpu": "quantum"], "resources.gpu"),
      (["gpu": 1], "resources.gpu"),
      (["vram": true], "resources.vram"),
      (["disk": "big"], "resources.disk"),
      (["memory": .array([])], "resources.memory"),
      (["labels": "site=studio"], "resources.labels"),
      (["labels": ["site": 1]], "resources.labels.site"),
    ] as [(JSONValue, String)])
  func refusesBadFields(resources: JSONValue, field: String) {
    let error = #expect(throws: RequirementsError.self) { try Requirements(resources: resources) }
    #expect(error?.field == field)
  }
}
