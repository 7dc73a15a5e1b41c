import Testing

@testable import Coordinator
@testable import Shared

/// A pass skips a queued shape that fits nowhere by its class number, and still places
/// every other shape behind it.
struct RequirementClassTests {
  @Test func manyUnplaceableJobsDoNotHideOneThatFits() throws {
    var core = CoordinatorCore(settings: CoordinatorSettings())
    let advert = WorkerAdvert(
      id: "w1", name: "w1",
      host: HostInfo(cpuCores: 2, memoryTotal: 1 << 34, platform: "linux", arch: "x64", hostname: "h"),
      gpus: [GPU(index: 0, vendor: .nvidia, model: "card", vramTotal: 24 << 30, vramFree: 24 << 30)],
      diskFree: 1 << 40, slots: 1, labels: [:])
    core.register(peer: [1], message: RegisterMessage(worker: advert, activeAttempts: []), now: 0)
    func submit(_ requirements: Requirements, array: [Int]?) {
      core.submit(
        peer: [2],
        request: SubmitRequest(
          requestID: "r", name: "j", entry: "a.json", args: .object(JSONObject()), requirements: requirements,
          priority: 0, retries: 0, timeoutSeconds: nil, artifacts: [], arrayIndices: array),
        bundleHash: "h", bundle: [], now: 0)
    }
    submit(Requirements(gpus: 8), array: Array(1...2000))
    submit(Requirements(gpus: 2), array: Array(1...10))
    submit(Requirements(gpus: 1, vram: 16_000_000_000), array: nil)
    _ = core.takeActions()
    core.schedule(now: 1)
    let assigned = core.takeActions().compactMap { action -> Int64? in
      if case .assign(_, let jobID, _, _) = action { return jobID }
      return nil
    }
    #expect(assigned == [2011])
  }
}
