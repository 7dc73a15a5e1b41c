import Foundation
import Shared

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public enum HostProbe {
  /// `platform` and `arch` in Node's spellings: scripts compare them against Pinokio's
  /// `platform` and `arch` variables (`"linux"`, `"x64"`).
  public static func facts() -> HostInfo {
    HostInfo(
      cpuCores: ProcessInfo.processInfo.activeProcessorCount,
      memoryTotal: memoryTotal(),
      platform: platform,
      arch: nodeArch(machine: machineName()),
      hostname: hostname())
  }

  /// Bytes an unprivileged process may still write at `path` (`f_bavail`, not `f_bfree`:
  /// the blocks reserved for root are no use to a job). Returns 0 when the path cannot
  /// be examined, so a broken disk never looks roomy to the scheduler.
  public static func diskFree(at path: String) -> Int64 {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return 0 }
    let bytes = UInt64(info.f_bavail) &* UInt64(info.f_frsize)
    return Int64(clamping: bytes)
  }

  /// `MemTotal` from `/proc/meminfo` rather than `physicalMemory`, because the kernel's
  /// figure is what is actually usable after firmware reservations; the Foundation value
  /// is the fallback off Linux.
  static func memoryTotal(meminfo: String? = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))
    -> Int64
  {
    if let meminfo, let kib = parseMemTotal(meminfo) { return kib * 1024 }
    return Int64(clamping: ProcessInfo.processInfo.physicalMemory)
  }

  static func parseMemTotal(_ text: String) -> Int64? {
    for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
      let fields = line.dropFirst("MemTotal:".count).split(separator: " ")
      if let first = fields.first, let kib = Int64(first) { return kib }
    }
    return nil
  }

  static var platform: String {
    #if os(Linux)
      "linux"
    #elseif os(macOS)
      "darwin"
    #elseif os(Windows)
      "win32"
    #else
      "unknown"
    #endif
  }

  /// Maps `uname -m` names to Node's `process.arch` names, which is what scripts test.
  static func nodeArch(machine: String) -> String {
    switch machine {
    case "x86_64", "amd64": "x64"
    case "aarch64", "arm64": "arm64"
    case "i386", "i686": "ia32"
    case "armv7l", "armv6l": "arm"
    case "ppc64le": "ppc64"
    default: machine
    }
  }

  static func machineName() -> String {
    var name = utsname()
    guard uname(&name) == 0 else { return "unknown" }
    return withUnsafeBytes(of: &name.machine) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
  }

  static func hostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return ProcessInfo.processInfo.hostName }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
