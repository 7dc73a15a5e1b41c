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

/// A result may carry its log's last lines (a tail): they are stored as a batch's would
/// be, and the result's acknowledgement says how far.
struct ResultTailTests {
  private func result(lastLogSeq: Int, tail: ClosedRange<Int>) -> (FinishedMessage, LogChunk) {
    (
      FinishedMessage(
        workerID: "w1", jobID: "1", attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil,
        lastLogSeq: lastLogSeq, tail: LogTail(firstSeq: tail.lowerBound, count: tail.count)),
      LogChunk(tail.map { (.stdout, 1, "l\($0)") })
    )
  }

  private func assigned() -> CoordinatorCore {
    var fixture = CoreFixture()
    fixture.submit()
    var core = fixture.core
    core.schedule(now: 0)
    _ = core.takeActions()
    return core
  }

  private func storedSeqs(_ actions: [CoordinatorAction]) -> [Int] {
    actions.flatMap { action -> [Int] in
      if case .store(.appendLogChunk(_, _, _, let first, let chunk)) = action {
        return [Int](first..<first + chunk.count)
      }
      return []
    }
  }

  private func sent<H: Decodable>(_ actions: [CoordinatorAction], _ type: MessageType, as: H.Type) throws
    -> [H]
  {
    try actions.compactMap { action -> H? in
      guard case .send(_, let envelope) = action, envelope.type == type else { return nil }
      return try envelope.decode(H.self)
    }
  }

  @Test func aTailIsStoredAndAcknowledgedWithTheResult() throws {
    var core = assigned()
    let (message, tail) = result(lastLogSeq: 2, tail: 1...2)
    core.finished(peer: [1], message: message, tail: tail, now: 1)
    let actions = core.takeActions()
    #expect(storedSeqs(actions) == [1, 2])
    #expect(core.jobs[1]?.state == .succeeded)
    let acks = try sent(actions, .reportAck, as: ReportAckMessage.self)
    #expect(acks.map(\.logUpTo) == [2])
    #expect(try sent(actions, .logAck, as: LogAckMessage.self).isEmpty, "the result's ack is the lines' ack")

    // Sent again (its ack was lost): acknowledged again, the lines not stored twice.
    core.finished(peer: [1], message: message, tail: tail, now: 2)
    let again = core.takeActions()
    #expect(storedSeqs(again).isEmpty)
    #expect(try sent(again, .reportAck, as: ReportAckMessage.self).map(\.logUpTo) == [2])
  }

  @Test func aTailBehindLostLinesIsKeptBackAndTheResultWaits() throws {
    var core = assigned()
    // Lines 1-2 went with a dropped connection; the result brings 3-4.
    let (message, tail) = result(lastLogSeq: 4, tail: 3...4)
    core.finished(peer: [1], message: message, tail: tail, now: 1)
    let actions = core.takeActions()
    #expect(storedSeqs(actions).isEmpty)
    #expect(core.jobs[1]?.state == .assigned)
    #expect(try sent(actions, .reportAck, as: ReportAckMessage.self).isEmpty)
    // The worker hears how far its log is stored, as a batch's sender would.
    #expect(try sent(actions, .logAck, as: LogAckMessage.self).map(\.upTo) == [0])

    core.logBatch(
      peer: [1], message: LogBatchMessage(workerID: "w1", jobID: "1", attempt: 1, firstSeq: 1, count: 2),
      chunk: LogChunk((1...2).map { (.stdout, 1, "l\($0)") }), now: 2)
    _ = core.takeActions()
    core.finished(peer: [1], message: message, tail: tail, now: 3)
    let taken = core.takeActions()
    #expect(storedSeqs(taken) == [3, 4])
    #expect(core.jobs[1]?.state == .succeeded)
    #expect(try sent(taken, .reportAck, as: ReportAckMessage.self).map(\.logUpTo) == [4])
  }
}
