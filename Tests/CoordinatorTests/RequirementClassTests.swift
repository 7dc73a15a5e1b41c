import Testing

@testable import Coordinator
@testable import Shared

/// A pass skips a queued shape that fits nowhere by its class number, and still places
/// every other shape behind it.
struct RequirementClassTests {
  @Test func manyUnplaceableJobsDoNotHideOneThatFits() throws {
    var fixture = CoreFixture(
      gpus: [GPU(index: 0, vendor: .nvidia, model: "card", vramTotal: 24 << 30, vramFree: 24 << 30)])
    fixture.submit(Requirements(gpus: 8), array: Array(1...2000))
    fixture.submit(Requirements(gpus: 2), array: Array(1...10))
    fixture.submit(Requirements(gpus: 1, vram: 16_000_000_000))
    var core = fixture.core
    _ = core.takeActions()
    core.schedule(now: 1)
    let assigned = core.takeActions().compactMap { action -> Int64? in
      if case .assign(_, let jobID, _, _) = action { return jobID }
      return nil
    }
    #expect(assigned == [2011])
  }
}
