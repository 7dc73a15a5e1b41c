import Foundation
import Synchronization
import Testing

@testable import Shared
@testable import Worker

@Suite struct JobOutputTests {
  @Test func announcesOncePerBacklogAndHandsOutSlices() {
    let announcements = Mutex(0)
    let output = JobOutput(capacity: 100) { announcements.withLock { $0 += 1 } }
    for i in 0..<10 { output.append(.stdout, "line \(i)", blocking: false) }
    #expect(announcements.withLock { $0 } == 1)
    let first = output.take(4)
    #expect(first.chunk.lines(firstSeq: 1).map(\.line) == (0..<4).map { "line \($0)" })
    #expect(first.more)
    let rest = output.take(100)
    #expect(rest.chunk.count == 6 && !rest.more)
    // Empty again: the next line announces anew.
    output.append(.stderr, "again", blocking: false)
    #expect(announcements.withLock { $0 } == 2)
  }

  @Test func aFullBufferBlocksTheReaderUntilLinesAreTaken() async {
    let output = JobOutput(capacity: 3) {}
    let written = Atomic<Int>(0)
    let reader = Thread {
      for i in 0..<10 {
        output.append(.stdout, "\(i)", blocking: true)
        written.add(1, ordering: .sequentiallyConsistent)
      }
    }
    reader.start()
    // The reader stops at the capacity and waits for the agent.
    var taken: [String] = []
    while taken.count < 10 {
      let slice = output.take(2)
      taken += slice.chunk.lines(firstSeq: 1).map(\.line)
      // What the reader got past `append` but nobody took yet fits in the buffer.
      #expect(written.load(ordering: .sequentiallyConsistent) - taken.count <= 3)
      if slice.chunk.count == 0 { await Task.yield() }
    }
    #expect(taken == (0..<10).map(String.init))
  }

  @Test func closeReleasesABlockedReaderAndDropsLaterLines() async {
    let output = JobOutput(capacity: 1) {}
    output.append(.stdout, "kept", blocking: true)
    let done = Atomic<Bool>(false)
    let reader = Thread {
      output.append(.stdout, "waits", blocking: true)
      done.store(true, ordering: .sequentiallyConsistent)
    }
    reader.start()
    output.close()
    while !done.load(ordering: .sequentiallyConsistent) { await Task.yield() }
    #expect(output.take(10).chunk.lines(firstSeq: 1).map(\.line) == ["kept"])
    output.append(.stdout, "dropped", blocking: false)
    #expect(output.take(10).chunk.count == 0)
  }
}
