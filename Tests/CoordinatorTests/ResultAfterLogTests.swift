import Testing

@testable import Coordinator
@testable import Shared

/// A result that overtakes lines lost with a dropped connection waits for them.
struct ResultAfterLogTests {
  @Test func aResultIsTakenOnlyOnceItsWholeLogIsStored() throws {
    var fixture = CoreFixture()
    fixture.submit()
    var core = fixture.core
    core.schedule(now: 0)
    _ = core.takeActions()
    let finished = FinishedMessage(
      workerID: "w1", jobID: "1", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
      lastLogSeq: 3)

    core.finished(peer: [1], message: finished, now: 1)
    #expect(core.takeActions().isEmpty, "no ack and no state change while lines 1-3 are missing")
    #expect(core.jobs[1]?.state == .assigned)

    core.logBatch(
      peer: [1], message: LogBatchMessage(workerID: "w1", jobID: "1", attempt: 1, firstSeq: 1, count: 3),
      chunk: LogChunk((1...3).map { (.stdout, 1, "l\($0)") }), now: 2)
    _ = core.takeActions()
    core.finished(peer: [1], message: finished, now: 3)
    let actions = core.takeActions()
    #expect(core.jobs[1]?.state == .succeeded)
    #expect(
      actions.contains {
        if case .send(_, let envelope) = $0 { return envelope.type == .reportAck }
        return false
      })
  }
}

struct LogGapTests {
  @Test func aBatchThatOvertakesALostOneIsKeptBackUntilTheGapIsFilled() throws {
    var fixture = CoreFixture()
    fixture.submit()
    var core = fixture.core
    core.schedule(now: 0)
    _ = core.takeActions()
    func batch(_ seqs: ClosedRange<Int>) -> [CoordinatorAction] {
      core.logBatch(
        peer: [1],
        message: LogBatchMessage(
          workerID: "w1", jobID: "1", attempt: 1, firstSeq: seqs.lowerBound, count: seqs.count),
        chunk: LogChunk(seqs.map { (.stdout, 1, "l\($0)") }), now: 1)
      return core.takeActions()
    }
    func stored(_ actions: [CoordinatorAction]) -> [Int] {
      actions.flatMap { action -> [Int] in
        if case .store(.appendLogChunk(_, _, _, let first, let chunk)) = action {
          return [Int](first..<first + chunk.count)
        }
        return []
      }
    }
    #expect(stored(batch(3...4)).isEmpty, "lines 1-2 were lost: nothing after the gap is stored")
    #expect(stored(batch(1...4)) == [1, 2, 3, 4])
    let overlapping = batch(2...5)
    #expect(stored(overlapping) == [5])
    // Only the new line's bytes are stored, numbered on from the job's log.
    let change = overlapping.compactMap { action -> (Int, LogChunk)? in
      if case .store(.appendLogChunk(_, _, let firstJobSeq, _, let chunk)) = action {
        return (firstJobSeq, chunk)
      }
      return nil
    }.first
    #expect(change?.0 == 5)
    #expect(change?.1.lines(firstSeq: 5).map(\.line) == ["l5"])
    #expect(core.logCursor(jobID: 1)?.workerSeq == 5)
  }
}
