import Foundation
import Shared
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Which process groups the worker's commands run in, so that a worker restarted after a
/// crash can kill what its predecessor left running (a detached server holding a GPU).
///
/// One append-only file, `+ PGID BOOT COMMAND` when a group starts and `- PGID` when it
/// has been reaped. A file per group cost every command an inode made and freed, and on
/// ext4 without a journal each new inode first scans past every one freed in the last
/// 30 s: on trivial jobs that scan was the worker's largest single cost. Appends are not
/// fsynced: a record only has to outlive the worker, not the machine (after a reboot its
/// number means nothing, which the boot id tells). The file is rewritten with the live
/// groups only once it grows past `compactionBytes`.
public final class ShellPidJournal: Sendable {
  public let directory: String
  var path: String { directory + "/" + Self.fileName }
  static let fileName = "journal"
  private let compactionBytes: Int

  private struct State {
    var fd: Int32 = -1
    var written = 0
    /// The records of groups not yet reaped, as written.
    var live: [pid_t: String] = [:]
  }
  private let state = Mutex(State())

  /// Opens (creating) the journal in `directory`. Call `killLeftovers` first: records
  /// already there are taken as this worker's own.
  public init(directory: String, compactionBytes: Int = 1 << 20) {
    self.directory = directory
    self.compactionBytes = max(256, compactionBytes)
    state.withLock { state in
      state.fd = Self.openForAppend(directory + "/" + Self.fileName)
      if state.fd >= 0 {
        var info = stat()
        if fstat(state.fd, &info) == 0 { state.written = Int(info.st_size) }
      }
    }
  }

  deinit {
    state.withLock { state in
      if state.fd >= 0 { close(state.fd) }
    }
  }

  func started(pgid: pid_t, command: String) {
    let text = command.prefix(200).map { $0.isNewline ? " " : $0 }
    let record = "+ \(pgid) \(Self.bootID) \(String(text))\n"
    state.withLock { state in
      state.live[pgid] = record
      append(record, &state)
    }
  }

  func ended(pgid: pid_t) {
    state.withLock { state in
      guard state.live.removeValue(forKey: pgid) != nil else { return }
      append("- \(pgid)\n", &state)
    }
  }

  private func append(_ record: String, _ state: inout State) {
    guard state.fd >= 0 else { return }
    if state.written >= compactionBytes { compact(&state) }
    let bytes = Array(record.utf8)
    if (try? WriteAll.write(state.fd, bytes)) != nil { state.written += bytes.count }
  }

  /// Rewrites the journal with the live groups only: written aside and renamed over it,
  /// so a crash in between leaves one whole journal or the other.
  private func compact(_ state: inout State) {
    let aside = path + ".new"
    let fd = open(aside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return }
    let bytes = Array(state.live.values.joined().utf8)
    guard (try? WriteAll.write(fd, bytes)) != nil, rename(aside, path) == 0 else {
      close(fd)
      unlink(aside)
      return
    }
    close(fd)
    close(state.fd)
    state.fd = Self.openForAppend(path)
    state.written = bytes.count
  }

  private static func openForAppend(_ path: String) -> Int32 {
    open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
  }

  /// For a worker that starts after a crash: SIGKILLs every process group an earlier run
  /// recorded in `directory` and did not see reaped, then clears the records. Records
  /// from before the last reboot are only cleared — their numbers now belong to
  /// unrelated processes. Also reads the file-per-group records older workers wrote.
  /// Returns the groups that were signalled.
  @discardableResult
  public static func killLeftovers(directory: String) -> [Int32] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
    var recorded: [(pgid: pid_t, boot: String)] = []
    for name in names {
      let file = directory + "/" + name
      if name == fileName {
        recorded += journalRecords((try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data())
        truncate(file, 0)
      } else if let pgid = Int32(name), pgid > 1 {
        let record = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        let boot = record.split(separator: "\n").first { $0.hasPrefix("boot=") }.map {
          String($0.dropFirst(5))
        }
        recorded.append((pgid, boot ?? ""))
        unlink(file)
      } else if name == fileName + ".new" {
        unlink(file)
      }
    }
    var killed: [Int32] = []
    for (pgid, boot) in recorded where boot == bootID && !killed.contains(pgid) {
      if kill(-pgid, SIGKILL) == 0 { killed.append(pgid) }
    }
    return killed
  }

  /// The groups a journal records as started and not reaped, in order. Lines that do not
  /// parse (a write torn by a full disk) are skipped.
  static func journalRecords(_ data: Data) -> [(pgid: pid_t, boot: String)] {
    var live: [pid_t: String] = [:]
    var order: [pid_t] = []
    var seen: Set<pid_t> = []
    for line in data.split(separator: UInt8(ascii: "\n")) {
      let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 3, omittingEmptySubsequences: false)
      guard fields.count >= 2, let pgid = Int32(String(decoding: fields[1], as: UTF8.self)), pgid > 1
      else { continue }
      switch fields[0].first {
      case UInt8(ascii: "+") where fields.count >= 3:
        if seen.insert(pgid).inserted { order.append(pgid) }
        live[pgid] = String(decoding: fields[2], as: UTF8.self)
      case UInt8(ascii: "-"):
        live[pgid] = nil
      default:
        continue
      }
    }
    return order.compactMap { pgid in live[pgid].map { (pgid, $0) } }
  }

  /// Changes at every boot, so a record can tell whether its pid is still ours.
  static let bootID: String = {
    let text = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
    return text?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
  }()
}
