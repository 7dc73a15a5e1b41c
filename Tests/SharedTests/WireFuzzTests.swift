import Foundation
import Testing

@testable import Shared

/// Hostile input for the wire: the frame decoder (`WireEnvelope`), the header of every
/// message type, and the bundle decoder ("PPB1"). Whatever arrives, decoding either
/// succeeds or throws the specific error a peer can be told (`WireError`,
/// `BundleError`) with a message that says what was wrong — it never traps.
///
/// Deterministic in the unit suite (fixed seeds and iteration counts); `scripts/fuzz`
/// runs the same fuzzers for a time budget from fresh seeds.
@Suite struct WireFuzzTests {
  @Test func randomFramesNeverTrap() {
    let fuzz = FuzzRun("wire.frames", seed: 0x5EED_1001, iterations: 3000)
    fuzz.run { rng, _ in
      let frames = randomFrames(using: &rng)
      try checkDecode(frames)
    }
  }

  @Test func mutatedValidMessagesNeverTrap() {
    let fuzz = FuzzRun("wire.mutations", seed: 0x5EED_1002, iterations: 3000)
    fuzz.run { rng, _ in
      let message = randomMessage(using: &rng)
      let frames = message.envelope.frames
      // Unmutated, every message decodes back to what was encoded.
      let decoded = try WireEnvelope(frames: frames)
      try fuzzCheck(decoded.type == message.envelope.type, "type changed: \(decoded.type)")
      try fuzzCheck(decoded.payload == message.envelope.payload, "payload changed for \(decoded.type)")
      // A value out of range is refused with the field named; any other decodes back
      // to exactly what was encoded.
      var rangeError: WireCheckError?
      do throws(WireCheckError) { try (message.header as? any WireChecked)?.check() } catch {
        rangeError = error
      }
      let outcome: Result<any Encodable, WireError>
      do throws(WireError) { outcome = .success(try decodeHeader(decoded)) } catch {
        outcome = .failure(error)
      }
      switch outcome {
      case .success(let again):
        try fuzzCheck(
          rangeError == nil, "\(decoded.type) with \(rangeError.map(\.description) ?? "") was accepted")
        try fuzzCheck(
          canonical(again) == canonical(message.header),
          "\(decoded.type) did not round-trip: \(String(decoding: decoded.header, as: UTF8.self))")
      case .failure(let error):
        let expected = rangeError.map {
          WireError.malformedHeader(type: decoded.type.rawValue, detail: $0.description)
        }
        try fuzzCheck(error == expected, "\(decoded.type) was refused: \(error)")
      }
      try checkDecode(mutate(frames, using: &rng))
    }
  }

  /// Every type's header, given every other type's header (a well-formed message of the
  /// wrong shape), and JSON values of the wrong kinds in every field.
  @Test func everyTypeRefusesOtherShapes() throws {
    let fuzz = FuzzRun("wire.shapes", seed: 0x5EED_1003, iterations: 1500)
    fuzz.run { rng, _ in
      let message = randomMessage(using: &rng)
      let type = MessageType.allCases.randomElement(using: &rng)!
      var header = message.envelope.header
      if Bool.random(using: &rng), var object = try? JSONDecoder().decode(JSONValue.self, from: header),
        case .object(var fields) = object, let key = fields.keys.randomElement(using: &rng)
      {
        fields[key] = randomJSON(depth: 0, using: &rng)
        object = .object(fields)
        header = Data(object.serialized(pretty: false).utf8)
      }
      try checkDecode([Data(WireEnvelope.protocolID.utf8), Data(type.rawValue.utf8), header])
    }
  }

  @Test func framesOfEveryCountAndWrongVersions() throws {
    let header = Data(#"{"requestID":"r"}"#.utf8)
    for count in 0..<3 {
      let frames = Array([Data(WireEnvelope.protocolID.utf8), Data("workers".utf8), header].prefix(count))
      #expect(throws: WireError.tooFewFrames(count)) { try WireEnvelope(frames: frames) }
    }
    for version in [
      "PINPOOL/0", "PINPOOL/1", "PINPOOL/2", "PINPOOL/3", "PINPOOL/40", "pinpool/4", "PINPOOL/4 ",
      " PINPOOL/4",
      "PINPOOL/", "",
    ] {
      #expect(throws: WireError.unknownProtocol(version)) {
        try WireEnvelope(frames: [Data(version.utf8), Data("workers".utf8), header])
      }
    }
    // Binary and very long protocol frames are named by size or cut short, never echoed whole.
    let binary = Data([0xFF, 0xFE, 0x00, 0xC3])
    #expect(throws: WireError.unknownProtocol("<4 bytes of binary>")) {
      try WireEnvelope(frames: [binary, Data("workers".utf8), header])
    }
    let long = String(repeating: "P", count: 100_000)
    do {
      _ = try WireEnvelope(frames: [Data(long.utf8), Data("workers".utf8), header])
      Issue.record("a 100 KB protocol frame was accepted")
    } catch {
      #expect(error.description.count < 200)
    }
    do {
      _ = try WireEnvelope(frames: [Data(WireEnvelope.protocolID.utf8), Data(long.utf8), header])
      Issue.record("a 100 KB type frame was accepted")
    } catch {
      #expect(error.description.count < 200)
    }
  }

  /// Large frames: a huge header, a huge string, deep nesting, many payload frames.
  @Test func oversizedAndDeepFramesNeverTrap() throws {
    let proto = Data(WireEnvelope.protocolID.utf8)
    var huge = Data(#"{"requestID":""#.utf8)
    huge.append(Data(repeating: UInt8(ascii: "x"), count: 8 * 1024 * 1024))
    huge.append(Data(#""}"#.utf8))
    let decoded = try decodeHeader(try WireEnvelope(frames: [proto, Data("workers".utf8), huge]))
    #expect((decoded as? WorkersRequest)?.requestID.count == 8 * 1024 * 1024)
    // Whitespace around a valid header.
    var padded = Data(repeating: UInt8(ascii: " "), count: 4 * 1024 * 1024)
    padded.append(Data(#"{"requestID":"r"}"#.utf8))
    _ = try decodeHeader(try WireEnvelope(frames: [proto, Data("workers".utf8), padded]))
    // Deep nesting where a header takes any JSON (args, locals, environment).
    for depth in [100, 1000, 100_000] {
      for (open, close) in [("[", "]"), (#"{"a":"#, "}")] {
        let value = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
        let header =
          #"{"requestID":"r","name":"n","entry":"e.json","args":{"x":"# + value
          + #"},"requirements":{"gpus":0,"labels":{}},"priority":0,"retries":0,"artifacts":[]}"#
        try checkDecode([proto, Data("submit".utf8), Data(header.utf8)])
        let truncated = String(repeating: open, count: depth)
        try checkDecode([proto, Data("progress".utf8), Data(truncated.utf8)])
      }
    }
    // Ten thousand payload frames on a message that takes none.
    let many =
      [proto, Data("workers".utf8), Data(#"{"requestID":"r"}"#.utf8)]
      + Array(repeating: Data([1]), count: 10_000)
    #expect(try WireEnvelope(frames: many).payload.count == 10_000)
  }

  @Test func outOfRangeNumbersAreRefusedWithTheFieldNamed() throws {
    let host = HostInfo(cpuCores: 8, memoryTotal: 1 << 34, platform: "linux", arch: "x86_64", hostname: "h")
    let gpu = GPU(index: 0, vendor: .nvidia, model: "RTX", vramTotal: 24 << 30, vramFree: 20 << 30)
    func advert(slots: Int = 1, gpus: [GPU] = [gpu], disk: Int64 = 1 << 40) -> WorkerAdvert {
      WorkerAdvert(id: "w", name: "w", host: host, gpus: gpus, diskFree: disk, slots: slots, labels: [:])
    }
    func refusal<H: Codable>(_ type: MessageType, _ header: H) -> String? {
      do {
        _ = try WireEnvelope(frames: WireEnvelope(type, header).frames).decode(H.self)
        return nil
      } catch {
        return error.description
      }
    }
    #expect(refusal(.register, RegisterMessage(worker: advert(), activeAttempts: [])) == nil)
    #expect(
      refusal(.register, RegisterMessage(worker: advert(slots: .max), activeAttempts: []))
        == "malformed 'register' header: worker.slots: 9223372036854775807 is outside 1...1024")
    #expect(
      refusal(.register, RegisterMessage(worker: advert(slots: 0), activeAttempts: []))?.contains(
        "worker.slots: 0 is outside") == true)
    var negative = gpu
    negative.vramFree = -1
    #expect(
      refusal(.heartbeat, HeartbeatMessage(workerID: "w", gpus: [gpu, negative]))
        == "malformed 'heartbeat' header: gpus[1].index: GPU 0 is listed twice")
    negative.index = 1
    #expect(
      refusal(.heartbeat, HeartbeatMessage(workerID: "w", gpus: [gpu, negative]))
        == "malformed 'heartbeat' header: gpus[1].vramFree: -1 is outside 0...1125899906842624")
    #expect(
      refusal(
        .logBatch,
        LogBatchMessage(workerID: "w", jobID: "1", attempt: 1, firstSeq: .max, count: 1))
        == "malformed 'logBatch' header: firstSeq: 9223372036854775807 is outside 1...9007199254740992")
    #expect(
      refusal(.logBatch, LogBatchMessage(workerID: "w", jobID: "1", attempt: 1, firstSeq: 1 << 53, count: 2))
        == "malformed 'logBatch' header: firstSeq + count - 1: 9007199254740993 is outside 0...9007199254740992"
    )
    // `index + 1` of a begin is shown in the job's status: Int.max once overflowed there.
    #expect(
      refusal(
        .artifactBegin,
        ArtifactBeginMessage(
          workerID: "w", jobID: "1", attempt: 1, name: "a", size: 1, sha256: "", index: .max, count: 1))
        == "malformed 'artifactBegin' header: index: 9223372036854775807 is outside 0...2147483648")
    #expect(
      refusal(
        .artifactChunk,
        ArtifactChunkMessage(
          workerID: "w", jobID: "1", attempt: 1, name: "a", offset: -1, size: .max, sha256: ""))
        == "malformed 'artifactChunk' header: offset: -1 is outside 0...1152921504606846976")
    let submit = SubmitRequest(
      requestID: "r", name: "n", entry: "e", args: [:], requirements: Requirements(gpus: 1), priority: .min,
      retries: 0, timeoutSeconds: nil, artifacts: [], arrayIndices: nil)
    #expect(refusal(.submit, submit)?.contains("priority: -9223372036854775808 is outside") == true)
    var retries = submit
    retries.priority = 0
    retries.retries = .max
    #expect(refusal(.submit, retries)?.contains("retries: 9223372036854775807 is outside 0...1000") == true)
    var timeout = retries
    timeout.retries = 2
    timeout.timeoutSeconds = -1
    #expect(refusal(.submit, timeout)?.contains("timeoutSeconds: -1.0 is not a positive number") == true)
    #expect(
      refusal(.jobs, JobsRequest(requestID: "r", state: nil, worker: nil, limit: -1))
        == "malformed 'jobs' header: limit: -1 is outside 1...1000000")
    #expect(
      refusal(.registered, RegisteredMessage(heartbeatInterval: 0, liveness: 6, stopAttempts: []))?.contains(
        "heartbeatInterval: 0.0 is outside") == true)
  }

  // MARK: Bundles

  @Test func bundleDecoderSurvivesRandomAndMutatedBytes() {
    let fuzz = FuzzRun("bundle", seed: 0x5EED_1004, iterations: 3000)
    fuzz.run { rng, iteration in
      let bundle = randomBundle(using: &rng)
      let encoded = bundle.encoded()
      let back = try JobBundle(decoding: encoded)
      try fuzzCheck(back == bundle, "bundle did not round-trip")
      let input: Data
      switch iteration % 4 {
      case 0: input = Data(rng.bytes(Int.random(in: 0...64, using: &rng)))
      case 1: input = Data("PPB1".utf8) + Data(rng.bytes(Int.random(in: 0...64, using: &rng)))
      default: input = mutateBundle(encoded, using: &rng)
      }
      do {
        let decoded = try JobBundle(decoding: input)
        for file in decoded.files {
          do { try JobBundle.checkPath(file.path) } catch {
            throw FuzzFailure(
              description: "decoded a bundle with the unsafe path \(file.path.debugDescription)")
          }
        }
        // Whatever decodes must encode back to exactly the input.
        try fuzzCheck(decoded.encoded() == input, "a decoded bundle does not encode back to its bytes")
      } catch let error as BundleError {
        switch error {
        case .corrupt, .badPath: try fuzzCheck(!error.description.isEmpty, "an empty bundle error")
        default: throw FuzzFailure(description: "unexpected bundle error \(error)")
        }
      }
    }
  }

  @Test func bundleFieldsAtTheirLimits() {
    func bundle(count: UInt32, pathLength: UInt32, path: [UInt8], size: UInt64, body: [UInt8]) -> Data {
      var out = Data("PPB1".utf8)
      withUnsafeBytes(of: count.littleEndian) { out.append(contentsOf: $0) }
      withUnsafeBytes(of: pathLength.littleEndian) { out.append(contentsOf: $0) }
      out.append(contentsOf: path)
      withUnsafeBytes(of: UInt16(0o644).littleEndian) { out.append(contentsOf: $0) }
      withUnsafeBytes(of: size.littleEndian) { out.append(contentsOf: $0) }
      out.append(contentsOf: body)
      return out
    }
    let cases: [(Data, String)] = [
      (Data(), "truncated at byte 0"),
      (Data("PPB2".utf8), "bad magic"),
      (Data("PPB1".utf8), "truncated at byte 4"),
      (bundle(count: .max, pathLength: 1, path: [0x61], size: 0, body: []), "more than a bundle may hold"),
      (bundle(count: 2, pathLength: 1, path: [0x61], size: 0, body: []), "truncated"),
      (bundle(count: 1, pathLength: .max, path: [], size: 0, body: []), "a path of 4294967295 bytes"),
      (Data("PPB1".utf8) + Data([1, 0, 0, 0, 5, 0, 0, 0, 0x61]), "truncated at byte 12"),
      (bundle(count: 1, pathLength: 2, path: [0xC3, 0x28], size: 0, body: []), "not UTF-8"),
      (bundle(count: 1, pathLength: 1, path: [0x61], size: .max, body: []), "claims"),
      (bundle(count: 1, pathLength: 1, path: [0x61], size: 3, body: [1]), "truncated"),
      (bundle(count: 1, pathLength: 1, path: [0x61], size: 0, body: [9]), "1 trailing bytes"),
    ]
    for (data, expected) in cases {
      #expect(throws: BundleError.self) { try JobBundle(decoding: data) }
      do {
        _ = try JobBundle(decoding: data)
      } catch {
        #expect(error.description.contains(expected), "\(error)")
      }
    }
    for path in ["/etc/passwd", "../x", "a/../../x", "a//b", "a/", "", "a\0b", ".."] {
      let bytes = Array(path.utf8)
      do {
        _ = try JobBundle(
          decoding: bundle(count: 1, pathLength: UInt32(bytes.count), path: bytes, size: 0, body: []))
        Issue.record("accepted the path \(path.debugDescription)")
      } catch {
        #expect(
          error.description.contains("must be relative") || error.description.contains("corrupt"), "\(error)")
      }
    }
  }
}

// MARK: - Checking a decode

/// Decodes `frames` as a receiver does; throws a `FuzzFailure` if it fails in a way a
/// peer could not be told about (an error that is not a `WireError`, or one without a
/// message).
fileprivate func checkDecode(_ frames: [Data]) throws(FuzzFailure) {
  let envelope: WireEnvelope
  do {
    envelope = try WireEnvelope(frames: frames)
  } catch {
    try fuzzCheck(!error.description.isEmpty, "empty error for \(frames.count) frames")
    return
  }
  do {
    _ = try decodeHeader(envelope)
    // The coordinator reads a request id from any header to address its error reply.
    _ = try? envelope.decode(RequestIDOnly.self)
  } catch {
    switch error {
    case .malformedHeader(let type, let detail), .missingPayload(let type, let detail):
      try fuzzCheck(type == envelope.type.rawValue, "error names '\(type)' for a \(envelope.type) message")
      try fuzzCheck(!detail.isEmpty, "no detail for a malformed \(type) header")
    default:
      throw FuzzFailure(description: "header decode threw \(error)")
    }
  }
}

/// The header of each message type, decoded the way its receiver decodes it. The switch
/// is exhaustive, so a new message type cannot be added without a fuzzed decoder.
fileprivate func decodeHeader(_ envelope: WireEnvelope) throws(WireError) -> any Encodable {
  switch envelope.type {
  case .register: return try envelope.decode(RegisterMessage.self)
  case .heartbeat: return try envelope.decode(HeartbeatMessage.self)
  case .logBatch: return try envelope.decodeLogBatch().0
  case .progress: return try envelope.decode(ProgressMessage.self)
  case .finished: return try envelope.decodeFinished().0
  case .cleanup: return try envelope.decode(CleanupMessage.self)
  case .registered: return try envelope.decode(RegisteredMessage.self)
  case .assign:
    let message = try envelope.decode(AssignMessage.self)
    guard let bundle = envelope.payload.first else {
      throw .missingPayload(type: "assign", detail: "no bundle frame")
    }
    do { _ = try JobBundle(decoding: bundle) } catch {
      throw .missingPayload(type: "assign", detail: error.description)
    }
    return message
  case .logAck: return try envelope.decode(LogAckMessage.self)
  case .reportAck: return try envelope.decode(ReportAckMessage.self)
  case .stop: return try envelope.decode(StopMessage.self)
  case .reregister: return try envelope.decode(ReregisterMessage.self)
  case .artifactBegin: return try envelope.decode(ArtifactBeginMessage.self)
  case .artifactChunk:
    let message = try envelope.decode(ArtifactChunkMessage.self)
    guard envelope.payload.count == 1 else {
      throw .missingPayload(type: "artifactChunk", detail: "expected 1 payload frame")
    }
    return message
  case .artifactAck: return try envelope.decode(ArtifactAckMessage.self)
  case .artifacts: return try envelope.decode(ArtifactsRequest.self)
  case .artifactFetch: return try envelope.decode(ArtifactFetchRequest.self)
  case .submit:
    let request = try envelope.decode(SubmitRequest.self)
    guard let bundle = envelope.payload.first else {
      throw .missingPayload(type: "submit", detail: "no bundle frame")
    }
    do { _ = try JobBundle(decoding: bundle) } catch {
      throw .missingPayload(type: "submit", detail: error.description)
    }
    return request
  case .status: return try envelope.decode(JobRequest.self)
  case .jobs: return try envelope.decode(JobsRequest.self)
  case .logs: return try envelope.decode(LogsRequest.self)
  case .workers: return try envelope.decode(WorkersRequest.self)
  case .cancel: return try envelope.decode(CancelRequest.self)
  case .drain, .undrain: return try envelope.decode(DrainRequest.self)
  case .reply: return try envelope.decode(Reply<JSONValue>.self)
  case .error: return try envelope.decode(ErrorReply.self)
  }
}

/// JSON with sorted keys, to compare two headers whatever the order of their fields.
fileprivate func canonical(_ value: any Encodable) -> Data {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys]
  return (try? encoder.encode(value)) ?? Data()
}

// MARK: - Generators

fileprivate struct GeneratedMessage {
  var envelope: WireEnvelope
  var header: any Encodable
}

private let words = ["", "a", "job-1", "é", "😀", "\"", "\\", "\n", "{{x}}", "../..", "\0", "w 1", "ø/∂"]

fileprivate func randomString(using rng: inout SplitMix64) -> String {
  (0..<Int.random(in: 0...3, using: &rng)).map { _ in words.randomElement(using: &rng)! }.joined()
}

fileprivate func randomInt(using rng: inout SplitMix64) -> Int {
  switch Int.random(in: 0..<6, using: &rng) {
  case 0: 0
  case 1: -1
  case 2: .max
  case 3: .min
  default: Int.random(in: -1000...1_000_000, using: &rng)
  }
}

fileprivate func randomInt64(using rng: inout SplitMix64) -> Int64 { Int64(randomInt(using: &rng)) }

fileprivate func randomDouble(using rng: inout SplitMix64) -> Double {
  [0, -1, 1e308, -1e-308, 0.5, 1.7e9, Double(Int.random(in: -99...99, using: &rng))].randomElement(
    using: &rng)!
}

fileprivate func randomJSON(depth: Int, using rng: inout SplitMix64) -> JSONValue {
  switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &rng) {
  case 0: return .null
  case 1: return .bool(Bool.random(using: &rng))
  case 2: return .number(randomDouble(using: &rng))
  case 3: return .string(randomString(using: &rng))
  case 4:
    return .array(
      (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomJSON(depth: depth + 1, using: &rng) })
  default:
    var object = JSONObject()
    for _ in 0..<Int.random(in: 0...3, using: &rng) {
      object[randomString(using: &rng)] = randomJSON(depth: depth + 1, using: &rng)
    }
    return .object(object)
  }
}

fileprivate func randomObject(using rng: inout SplitMix64) -> JSONValue {
  var object = JSONObject()
  for _ in 0..<Int.random(in: 0...3, using: &rng) {
    object[randomString(using: &rng)] = randomJSON(depth: 1, using: &rng)
  }
  return .object(object)
}

fileprivate func maybe<T>(_ rng: inout SplitMix64, _ make: (inout SplitMix64) -> T) -> T? {
  Bool.random(using: &rng) ? make(&rng) : nil
}

fileprivate func randomLabels(using rng: inout SplitMix64) -> [String: String] {
  var labels: [String: String] = [:]
  for _ in 0..<Int.random(in: 0...2, using: &rng) {
    labels[randomString(using: &rng)] = randomString(using: &rng)
  }
  return labels
}

fileprivate func randomGPU(using rng: inout SplitMix64) -> GPU {
  GPU(
    index: randomInt(using: &rng), vendor: GPUVendor.allCases.randomElement(using: &rng)!,
    model: randomString(using: &rng), uuid: maybe(&rng) { randomString(using: &$0) },
    vramTotal: randomInt64(using: &rng), vramFree: randomInt64(using: &rng),
    computeCapability: maybe(&rng) { randomString(using: &$0) },
    driver: maybe(&rng) { randomString(using: &$0) })
}

fileprivate func randomRequirements(using rng: inout SplitMix64) -> Requirements {
  Requirements(
    gpus: randomInt(using: &rng), gpuVendor: maybe(&rng) { GPUVendor.allCases.randomElement(using: &$0)! },
    vram: maybe(&rng) { randomInt64(using: &$0) }, disk: maybe(&rng) { randomInt64(using: &$0) },
    memory: maybe(&rng) { randomInt64(using: &$0) }, labels: randomLabels(using: &rng),
    gpuModel: maybe(&rng) { randomString(using: &$0) },
    computeCapability: maybe(&rng) { randomString(using: &$0) },
    platform: maybe(&rng) { randomString(using: &$0) })
}

fileprivate func randomRefs(using rng: inout SplitMix64) -> [AttemptRef] {
  (0..<Int.random(in: 0...3, using: &rng)).map { _ in
    AttemptRef(jobID: randomString(using: &rng), attempt: randomInt(using: &rng))
  }
}

fileprivate func randomBundle(using rng: inout SplitMix64) -> JobBundle {
  let names = ["install.json", "a/b.js", "é.json", "x", "deep/er/file.txt"]
  var files: [JobBundle.File] = []
  for name in names.shuffled(using: &rng).prefix(Int.random(in: 0...3, using: &rng)) {
    files.append(
      JobBundle.File(
        path: name, mode: UInt16.random(in: 0...0o777, using: &rng),
        data: Data(rng.bytes(Int.random(in: 0...40, using: &rng)))))
  }
  return JobBundle(files: files)
}

/// A well-formed message of a random type with random field values.
fileprivate func randomMessage(using rng: inout SplitMix64) -> GeneratedMessage {
  func make<H: Encodable>(_ type: MessageType, _ header: H, payload: [Data] = []) -> GeneratedMessage {
    GeneratedMessage(envelope: WireEnvelope(type, header, payload: payload), header: header)
  }
  let s = { (rng: inout SplitMix64) in randomString(using: &rng) }
  let i = { (rng: inout SplitMix64) in randomInt(using: &rng) }
  let type = MessageType.allCases.randomElement(using: &rng)!
  switch type {
  case .register:
    let advert = WorkerAdvert(
      id: s(&rng), name: s(&rng),
      host: HostInfo(
        cpuCores: i(&rng), memoryTotal: randomInt64(using: &rng), platform: s(&rng), arch: s(&rng),
        hostname: s(&rng)),
      gpus: (0..<Int.random(in: 0...2, using: &rng)).map { _ in randomGPU(using: &rng) },
      diskFree: randomInt64(using: &rng), slots: i(&rng), labels: randomLabels(using: &rng))
    return make(type, RegisterMessage(worker: advert, activeAttempts: randomRefs(using: &rng)))
  case .heartbeat:
    return make(
      type,
      HeartbeatMessage(
        workerID: s(&rng), gpus: maybe(&rng) { [randomGPU(using: &$0)] },
        diskFree: maybe(&rng) { randomInt64(using: &$0) },
        activeAttempts: maybe(&rng) { randomRefs(using: &$0) }))
  case .logBatch:
    var chunk = LogChunk()
    for _ in 0..<Int.random(in: 0...4, using: &rng) {
      chunk.append(
        stream: [LogStream.stdout, .stderr, .pinpool].randomElement(using: &rng)!,
        time: Double.random(in: -1e10...1e10, using: &rng), text: s(&rng))
    }
    // A payload its header describes (a mutation of the frames below breaks it).
    return make(
      type,
      LogBatchMessage(
        workerID: s(&rng), jobID: s(&rng), attempt: i(&rng), firstSeq: i(&rng), count: chunk.count),
      payload: [chunk.bytes])
  case .progress:
    return make(
      type,
      ProgressMessage(
        workerID: s(&rng), jobID: s(&rng), attempt: i(&rng),
        state: JobState.allCases.randomElement(using: &rng)!,
        stepIndex: i(&rng), stepCount: i(&rng), locals: maybe(&rng) { randomObject(using: &$0) },
        notification: maybe(&rng) { randomString(using: &$0) }))
  case .finished:
    return make(
      type,
      FinishedMessage(
        workerID: s(&rng), jobID: s(&rng), attempt: i(&rng),
        state: JobState.allCases.randomElement(using: &rng)!,
        exitCode: maybe(&rng) { Int32.random(in: .min ... .max, using: &$0) }, error: maybe(&rng) { s(&$0) },
        locals: maybe(&rng) { randomObject(using: &$0) }, lastLogSeq: i(&rng),
        // An optional JSON value that is null decodes as absent: generate none.
        environment: maybe(&rng) { randomObject(using: &$0) }))
  case .cleanup:
    return make(
      type,
      CleanupMessage(
        workerID: s(&rng), jobID: s(&rng), attempt: i(&rng),
        state: [CleanupState.none, .pending, .done, .kept].randomElement(using: &rng)!,
        bytesFreed: randomInt64(using: &rng), diskFreeAfter: randomInt64(using: &rng),
        reason: maybe(&rng) { s(&$0) }))
  case .registered:
    return make(
      type,
      RegisteredMessage(
        heartbeatInterval: randomDouble(using: &rng), liveness: i(&rng), stopAttempts: randomRefs(using: &rng)
      ))
  case .assign:
    let job = AssignedJob(
      jobID: s(&rng), attempt: i(&rng), name: s(&rng), entry: s(&rng), args: randomObject(using: &rng),
      gpuIndices: (0..<Int.random(in: 0...2, using: &rng)).map { _ in i(&rng) },
      requirements: randomRequirements(using: &rng), timeoutSeconds: maybe(&rng) { randomDouble(using: &$0) },
      artifacts: (0..<Int.random(in: 0...2, using: &rng)).map { _ in s(&rng) })
    return make(type, AssignMessage(job: job), payload: [randomBundle(using: &rng).encoded()])
  case .logAck: return make(type, LogAckMessage(jobID: s(&rng), attempt: i(&rng), upTo: i(&rng)))
  case .reportAck:
    return make(
      type,
      ReportAckMessage(
        jobID: s(&rng), attempt: i(&rng), kind: Bool.random(using: &rng) ? .finished : .cleanup))
  case .stop:
    return make(
      type, StopMessage(jobID: s(&rng), attempt: i(&rng), reason: s(&rng), stale: Bool.random(using: &rng)))
  case .reregister: return make(type, ReregisterMessage(reason: s(&rng)))
  case .artifactBegin:
    return make(
      type,
      ArtifactBeginMessage(
        workerID: s(&rng), jobID: s(&rng), attempt: i(&rng), name: s(&rng), size: randomInt64(using: &rng),
        sha256: s(&rng), index: i(&rng), count: i(&rng)))
  case .artifactChunk:
    return make(
      type,
      ArtifactChunkMessage(
        workerID: s(&rng), jobID: s(&rng), attempt: i(&rng), name: s(&rng), offset: randomInt64(using: &rng),
        size: randomInt64(using: &rng), sha256: s(&rng)),
      payload: [Data(s(&rng).utf8)])
  case .artifactAck:
    return make(
      type,
      ArtifactAckMessage(
        jobID: s(&rng), attempt: i(&rng), name: s(&rng), offset: randomInt64(using: &rng),
        complete: Bool.random(using: &rng), error: maybe(&rng) { s(&$0) }))
  case .artifacts: return make(type, ArtifactsRequest(requestID: s(&rng), jobID: s(&rng)))
  case .artifactFetch:
    return make(
      type,
      ArtifactFetchRequest(
        requestID: s(&rng), jobID: s(&rng), attempt: i(&rng), name: s(&rng), offset: randomInt64(using: &rng),
        length: i(&rng)))
  case .submit:
    var request = SubmitRequest(
      requestID: s(&rng), name: s(&rng), entry: s(&rng), args: randomObject(using: &rng),
      requirements: randomRequirements(using: &rng), priority: i(&rng), retries: i(&rng),
      timeoutSeconds: maybe(&rng) { randomDouble(using: &$0) },
      artifacts: (0..<Int.random(in: 0...2, using: &rng)).map { _ in s(&rng) },
      arrayIndices: maybe(&rng) { rng in
        (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomInt(using: &rng) }
      })
    if Bool.random(using: &rng) { request.requirements.labels = [:] }
    return make(type, request, payload: [randomBundle(using: &rng).encoded()])
  case .status: return make(type, JobRequest(requestID: s(&rng), jobID: s(&rng)))
  case .jobs:
    var request = JobsRequest(
      requestID: s(&rng), state: maybe(&rng) { JobState.allCases.randomElement(using: &$0)! },
      worker: maybe(&rng) { s(&$0) }, limit: maybe(&rng) { i(&$0) })
    request.array = maybe(&rng) { s(&$0) }
    return make(type, request)
  case .logs:
    return make(type, LogsRequest(requestID: s(&rng), jobID: s(&rng), since: i(&rng), limit: i(&rng)))
  case .workers: return make(type, WorkersRequest(requestID: s(&rng)))
  case .cancel:
    var request = CancelRequest(
      requestID: s(&rng), jobIDs: (0..<Int.random(in: 0...3, using: &rng)).map { _ in s(&rng) })
    request.array = maybe(&rng) { s(&$0) }
    return make(type, request)
  case .drain, .undrain: return make(type, DrainRequest(requestID: s(&rng), worker: s(&rng)))
  case .reply: return make(type, Reply(requestID: s(&rng), result: randomJSON(depth: 0, using: &rng)))
  case .error: return make(type, ErrorReply(requestID: maybe(&rng) { s(&$0) }, message: s(&rng)))
  }
}

/// Frames of random shape: random bytes, or pieces of a real message.
fileprivate func randomFrames(using rng: inout SplitMix64) -> [Data] {
  let count = Int.random(in: 0...6, using: &rng)
  return (0..<count).map { index in
    switch (index, Int.random(in: 0..<4, using: &rng)) {
    case (0, 0...1): return Data(WireEnvelope.protocolID.utf8)
    case (1, 0...1): return Data(MessageType.allCases.randomElement(using: &rng)!.rawValue.utf8)
    case (2, 0): return Data(#"{"requestID":"#.utf8) + Data(rng.bytes(Int.random(in: 0...16, using: &rng)))
    case (2, 1): return randomMessage(using: &rng).envelope.header
    default: return Data(rng.bytes(Int.random(in: 0...48, using: &rng)))
    }
  }
}

/// A valid message's frames, damaged: bits flipped, bytes cut or added, frames dropped,
/// duplicated, swapped or replaced, a header grown large.
fileprivate func mutate(_ original: [Data], using rng: inout SplitMix64) -> [Data] {
  var frames = original
  for _ in 0..<Int.random(in: 1...3, using: &rng) {
    guard !frames.isEmpty else { return frames }
    let index = Int.random(in: 0..<frames.count, using: &rng)
    switch Int.random(in: 0..<9, using: &rng) {
    case 0:
      var bytes = [UInt8](frames[index])
      if !bytes.isEmpty {
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
          bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
        }
      }
      frames[index] = Data(bytes)
    case 1: frames[index] = frames[index].prefix(Int.random(in: 0...frames[index].count, using: &rng))
    case 2: frames.remove(at: index)
    case 3: frames.insert(frames[index], at: Int.random(in: 0...frames.count, using: &rng))
    case 4: frames.swapAt(index, Int.random(in: 0..<frames.count, using: &rng))
    case 5: frames[index] = Data(rng.bytes(Int.random(in: 0...32, using: &rng)))
    case 6:
      // A byte from the JSON alphabet at a random position of the header.
      var bytes = [UInt8](frames[min(2, frames.count - 1)])
      let position = Int.random(in: 0...bytes.count, using: &rng)
      bytes.insert(Array(#"{}[]",:0-e.\nu"#.utf8).randomElement(using: &rng)!, at: position)
      frames[min(2, frames.count - 1)] = Data(bytes)
    case 7:
      frames[0] = Data(
        ["PINPOOL/2", "PINPOOL/3", "pinpool/4", "PINPOOL/4\0"].randomElement(using: &rng)!.utf8)
    default:
      // A header grown with a long string field (up to 64 KiB; the 8 MiB case is below).
      let size = Int.random(in: 1...64, using: &rng) * 1024
      frames[min(2, frames.count - 1)] = Data(
        (#"{"requestID":""# + String(repeating: "y", count: size) + #"","x":1}"#).utf8)
    }
  }
  return frames
}

/// A valid bundle's bytes, damaged: bits flipped, cut short, extended, or a length field
/// set to an extreme value.
fileprivate func mutateBundle(_ original: Data, using rng: inout SplitMix64) -> Data {
  var bytes = [UInt8](original)
  switch Int.random(in: 0..<4, using: &rng) {
  case 0:
    for _ in 0..<Int.random(in: 1...3, using: &rng) where !bytes.isEmpty {
      bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
    }
  case 1: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
  case 2: bytes += rng.bytes(Int.random(in: 1...8, using: &rng))
  default:
    // Overwrite 1, 2, 4 or 8 bytes with 0x00 or 0xFF: counts, lengths and sizes at extremes.
    let width = [1, 2, 4, 8].randomElement(using: &rng)!
    guard bytes.count >= width else { break }
    let at = Int.random(in: 0...(bytes.count - width), using: &rng)
    let fill: UInt8 = Bool.random(using: &rng) ? 0xFF : 0x00
    for k in at..<at + width { bytes[k] = fill }
  }
  return Data(bytes)
}
