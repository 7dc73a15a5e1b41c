@testable import Coordinator
@testable import Shared

/// A core with one registered worker ("w1" on peer [1]), and submits from a client on
/// peer [2]; shared by the tests that drive the core through whole message flows.
struct CoreFixture {
  var core = CoordinatorCore(settings: CoordinatorSettings())

  init(gpus: [GPU] = []) {
    let advert = WorkerAdvert(
      id: "w1", name: "w1",
      host: HostInfo(cpuCores: 2, memoryTotal: 1 << 34, platform: "linux", arch: "x64", hostname: "h"),
      gpus: gpus, diskFree: 1 << 40, slots: 1, labels: [:])
    core.register(peer: [1], message: RegisterMessage(worker: advert, activeAttempts: []), now: 0)
  }

  mutating func submit(_ requirements: Requirements = Requirements(), array: [Int]? = nil) {
    core.submit(
      peer: [2],
      request: SubmitRequest(
        requestID: "r", name: "j", entry: "a.json", args: .object(JSONObject()), requirements: requirements,
        priority: 0, retries: 0, timeoutSeconds: nil, artifacts: [], arrayIndices: array),
      bundleHash: "h", bundle: [], now: 0)
  }
}
