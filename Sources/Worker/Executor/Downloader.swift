import Foundation

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// `fs.download`: HTTP(S) to a file, the way model weights are fetched. A file that is
/// already there is not fetched again; an interrupted download continues from a
/// `.part` file with a Range request; transient failures are retried with backoff.
enum Downloader {
  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  static func download(
    from url: URL, to destination: String, attempts: Int = 4, log: @escaping @Sendable (String) -> Void
  ) async throws -> Int64 {
    if let size = try? FileManager.default.attributesOfItem(atPath: destination)[.size] as? NSNumber {
      log("fs.download: \(destination) exists, skipped")
      return size.int64Value
    }
    let partial = destination + ".part"
    var delay: Duration = .milliseconds(500)
    var lastError = "no attempt made"
    for attempt in 1...attempts {
      try Task.checkCancellation()
      do {
        let size = try await fetch(url: url, partial: partial, log: log)
        try FileManager.default.moveItem(atPath: partial, toPath: destination)
        log("fs.download: saved \(destination) (\(size) bytes)")
        return size
      } catch let failure as Failure {
        lastError = failure.description
      } catch is CancellationError {
        throw CancellationError()
      } catch {
        lastError = "\(error)"
      }
      if attempt < attempts {
        log("fs.download: attempt \(attempt) failed (\(lastError)); retrying in \(delay)")
        try await Task.sleep(for: delay)
        delay *= 2
      }
    }
    throw Failure(
      description: "downloading \(url.absoluteString) failed after \(attempts) attempts: \(lastError)")
  }

  private static func fetch(url: URL, partial: String, log: @escaping @Sendable (String) -> Void) async throws
    -> Int64
  {
    let existing =
      (try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? NSNumber)?.int64Value ?? 0
    var request = URLRequest(url: url)
    if existing > 0 { request.setValue("bytes=\(existing)-", forHTTPHeaderField: "Range") }
    let sink = try DownloadSink(path: partial, resumeFrom: existing, log: log)
    let delegate = DownloadDelegate(sink: sink)
    let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
    defer { session.finishTasksAndInvalidate() }
    let task = session.dataTask(with: request)
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        delegate.continuation = continuation
        task.resume()
      }
    } onCancel: {
      task.cancel()
    }
  }
}

/// Writes the body to the `.part` file as it arrives and logs progress every 10%.
private final class DownloadSink: @unchecked Sendable {
  let handle: FileHandle
  var written: Int64
  var expected: Int64 = -1
  var lastReported = -1
  let log: @Sendable (String) -> Void

  init(path: String, resumeFrom offset: Int64, log: @escaping @Sendable (String) -> Void) throws {
    if !FileManager.default.fileExists(atPath: path) {
      _ = FileManager.default.createFile(atPath: path, contents: nil)
    }
    handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    written = offset
    self.log = log
  }

  func start(status: Int, length: Int64) throws {
    if status == 200, written > 0 {
      // The server ignored the Range: start over.
      try handle.truncate(atOffset: 0)
      written = 0
    } else if status == 206 {
      try handle.seekToEnd()
    } else if status != 200 {
      throw Downloader.Failure(description: "the server answered HTTP \(status)")
    }
    expected = length >= 0 ? written + length : -1
  }

  /// Throws when the file cannot take the bytes (a full disk): Foundation's non-throwing
  /// `write(_:)` traps on that, which would take the whole worker down with one job.
  func append(_ data: Data) throws {
    try handle.write(contentsOf: data)
    written += Int64(data.count)
    if expected > 0 {
      let percent = Int(written * 100 / expected) / 10 * 10
      if percent != lastReported {
        lastReported = percent
        log("fs.download: \(percent)% of \(expected) bytes")
      }
    }
  }
}

private final class DownloadDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
  let sink: DownloadSink
  var continuation: CheckedContinuation<Int64, any Error>?
  private var failure: (any Error)?

  init(sink: DownloadSink) {
    self.sink = sink
  }

  func urlSession(
    _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
  ) {
    let status = (response as? HTTPURLResponse)?.statusCode ?? 200
    do {
      try sink.start(status: status, length: response.expectedContentLength)
      completionHandler(.allow)
    } catch {
      failure = error
      completionHandler(.cancel)
    }
  }

  func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
    guard failure == nil else { return }
    do {
      try sink.append(data)
    } catch {
      failure = Downloader.Failure(description: "cannot write the download: \(error.localizedDescription)")
      dataTask.cancel()
    }
  }

  func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
    try? sink.handle.close()
    let continuation = self.continuation
    self.continuation = nil
    if let failure = failure ?? error {
      continuation?.resume(
        throwing: failure is Downloader.Failure
          ? failure : Downloader.Failure(description: "\(failure.localizedDescription)"))
    } else {
      continuation?.resume(returning: sink.written)
    }
  }
}
