import Foundation
import Testing

@testable import Coordinator
@testable import Shared

/// Finished jobs leave the store after the retention time, with their logs; live jobs
/// and jobs the core still tracks stay.
struct RetentionTests {
  @Test func pruneDeletesOnlyOldFinishedJobsAndUnusedBundles() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "pinpool-ret-\(UUID().uuidString)"
    ).path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let store = try JobStore(directory: dir)
    func row(_ id: Int64) -> NewJobRow {
      NewJobRow(
        id: id, name: "j\(id)", priority: 0, retries: 0, entry: "a.json", args: .object(JSONObject()),
        requirements: Requirements(), artifacts: [], timeoutSeconds: nil, submittedAt: 0)
    }
    try store.apply([.insertJobs([row(1), row(2), row(3), row(4)], bundleHash: "h1", bundle: [1, 2, 3])])
    try store.apply([
      .appendLogChunk(
        jobID: 1, attempt: 1, firstJobSeq: 1, firstWorkerSeq: 1,
        chunk: LogChunk([(.stdout, 1, String(repeating: "x", count: 20_000))])),
      .jobFinished(id: 1, attempt: 1, state: .succeeded, exitCode: 0, error: nil, locals: nil, at: 100),
      .jobFinished(id: 2, attempt: 1, state: .failed, exitCode: 1, error: "e", locals: nil, at: 100),
      .jobFinished(id: 3, attempt: 1, state: .cancelled, exitCode: nil, error: nil, locals: nil, at: 900),
    ])
    #expect(FileManager.default.fileExists(atPath: store.logFiles.path(1)))
    // Job 2 is old but the core still waits for its cleanup report; job 4 is queued.
    #expect(try store.pruneJobs(finishedBefore: 500, keep: [2]).count == 1)
    #expect(try store.job(1, waitReason: { _ in nil }) == nil)
    #expect(try store.logs(jobID: 1, since: 0, limit: 10).isEmpty)
    // Its log file went with it.
    #expect(!FileManager.default.fileExists(atPath: store.logFiles.path(1)))
    // A file a crash left between the prune's commit and the unlink goes at the next start;
    // a file the index still names stays.
    try Data("orphan".utf8).write(to: URL(fileURLWithPath: store.logFiles.path(77)))
    try store.apply([
      .appendLogChunk(
        jobID: 4, attempt: 1, firstJobSeq: 1, firstWorkerSeq: 1,
        chunk: LogChunk([(.stdout, 1, String(repeating: "z", count: 20_000))]))
    ])
    let reopened = try JobStore(directory: dir)
    #expect(!FileManager.default.fileExists(atPath: reopened.logFiles.path(77)))
    #expect(try reopened.logs(jobID: 4, since: 0, limit: 10).count == 1)
    #expect(try store.job(2, waitReason: { _ in nil }) != nil)
    #expect(try store.job(3, waitReason: { _ in nil }) != nil)
    #expect(try store.job(4, waitReason: { _ in nil })?.state == .queued)
    // The bundle is still used by the remaining jobs.
    #expect(try store.assignments([(4, 1, [])])[0]?.1 == Data([1, 2, 3]))
    #expect(try store.pruneJobs(finishedBefore: 10_000, keep: []).count == 2)
    #expect(try store.job(4, waitReason: { _ in nil }) != nil)
  }
}
