import Testing

@testable import Shared

/// Model, compute capability and platform requirements.
struct MatchingExtrasTests {
  private let GB: Int64 = 1_000_000_000

  private func box(_ gpus: [GPU], platform: String = "linux") -> WorkerCapacity {
    WorkerCapacity(
      gpus: gpus, reservedGPUIndices: [], freeSlots: 1, diskFree: 1_000 * GB, memoryTotal: 64 * GB,
      labels: [:],
      platform: platform)
  }

  private func gpu(_ index: Int, _ model: String, _ capability: String?) -> GPU {
    GPU(
      index: index, vendor: .nvidia, model: model, vramTotal: 24 * GB, vramFree: 24 * GB,
      computeCapability: capability)
  }

  @Test func modelIsACaseInsensitiveSubstring() {
    let capacity = box([gpu(0, "NVIDIA GeForce RTX 4090", "8.9"), gpu(1, "NVIDIA A100-SXM4-80GB", "8.0")])
    let placed = Matching.place(Requirements(gpuModel: "a100"), on: capacity)
    #expect((try? placed.get())?.gpuIndices == [1])
    #expect(throws: MismatchReason.self) {
      try Matching.place(Requirements(gpuModel: "H100"), on: capacity).get()
    }
  }

  @Test func computeCapabilityIsAMinimumComparedAsAVersion() {
    let capacity = box([gpu(0, "old", "7.5"), gpu(1, "new", "10.0"), gpu(2, "unknown", nil)])
    #expect(
      (try? Matching.place(Requirements(computeCapability: "8.0"), on: capacity).get())?.gpuIndices == [1])
    #expect((try? Matching.place(Requirements(gpus: 2, computeCapability: "7.5"), on: capacity).get()) != nil)
    #expect(throws: MismatchReason.self) {
      try Matching.place(Requirements(gpus: 2, computeCapability: "9.0"), on: capacity).get()
    }
  }

  @Test func platformMustMatch() {
    #expect(throws: MismatchReason.self) {
      try Matching.place(Requirements(platform: "darwin"), on: box([])).get()
    }
    #expect((try? Matching.place(Requirements(platform: "linux"), on: box([])).get()) != nil)
  }

  @Test func scriptResourcesCarryTheNewFields() throws {
    let requirements = try Requirements(
      resources: ["gpu_model": "4090", "compute_capability": "8.9", "platform": "linux"])
    #expect(requirements.gpuModel == "4090")
    #expect(requirements.computeCapability == "8.9")
    #expect(requirements.platform == "linux")
    #expect(requirements.effectiveGPUCount == 1)
    #expect(requirements.summary.contains("matching '4090'"))
    #expect(throws: RequirementsError.self) { try Requirements(resources: ["compute_capability": "eight"]) }
  }
}
