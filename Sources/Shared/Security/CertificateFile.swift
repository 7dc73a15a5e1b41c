import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Key files in czmq's certificate convention (`zcert`): `NAME.key` holds the public key
/// and may be shared; `NAME.key_secret` holds both keys and is readable by its owner
/// only. They are ZPL text, so keys made with czmq tools (`zcert_save`) work here and
/// the reverse.
public enum CertificateFile {
  public static let publicSuffix = ".key"
  public static let secretSuffix = ".key_secret"

  /// Writes a new pair as `FOLDER/NAME.key` (0644) and `FOLDER/NAME.key_secret` (0600),
  /// never replacing an existing key.
  public static func write(_ pair: CurveKeyPair, to folder: String, now: Date = Date()) throws(KeyFileError) {
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
      throw .unreadable(path: folder, detail: "cannot create the folder: \(error.localizedDescription)")
    }
    let base = (folder as NSString).appendingPathComponent(pair.name)
    let stamp = ISO8601DateFormatter().string(from: now)
    let metadata = "metadata\n    name = \"\(escape(pair.name))\"\ncurve\n"
    let publicText =
      "#   ****  Generated on \(stamp) by pinpool  ****\n"
      + "#   ZeroMQ CURVE Public Certificate\n"
      + "#   Exchange securely, or use a secure mechanism to verify the contents\n"
      + "#   of this file after exchange.\n\n"
      + metadata + "    public-key = \"\(pair.publicKey.z85)\"\n"
    let secretText =
      "#   ****  Generated on \(stamp) by pinpool  ****\n"
      + "#   ZeroMQ CURVE **Secret** Certificate\n"
      + "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
      + metadata + "    public-key = \"\(pair.publicKey.z85)\"\n"
      + "    secret-key = \"\(pair.secretKey.z85)\"\n"
    for path in [base + publicSuffix, base + secretSuffix] where FileManager.default.fileExists(atPath: path)
    {
      throw .exists(path: path)
    }
    // The secret first and created with its final mode, so it is never readable by others,
    // not even for an instant.
    try create(base + secretSuffix, secretText, mode: 0o600)
    try create(base + publicSuffix, publicText, mode: 0o644)
  }

  /// Reads a public key file (or the public half of a secret one).
  public static func readPublic(_ path: String) throws(KeyFileError) -> (name: String, key: CurveKey) {
    let fields = try parse(path)
    guard let text = fields["curve/public-key"] else {
      throw .malformed(path: path, line: nil, detail: "no `public-key` under `curve`")
    }
    guard let key = CurveKey(z85: text.value) else {
      throw .malformed(path: path, line: text.line, detail: "the public key is not 40 characters of Z85")
    }
    return (fields["metadata/name"]?.value ?? stem(path), key)
  }

  /// Reads a secret key file, refusing one that others can read.
  public static func readPair(_ path: String) throws(KeyFileError) -> CurveKeyPair {
    var info = stat()
    guard stat(path, &info) == 0 else {
      throw .missing(path: path, hint: "make one with `pinpool keys generate --out DIR --name NAME`")
    }
    let mode = Int(info.st_mode) & 0o777
    guard mode & 0o077 == 0 else { throw .exposed(path: path, mode: mode) }
    let fields = try parse(path)
    guard let publicText = fields["curve/public-key"], let secretText = fields["curve/secret-key"] else {
      throw .malformed(
        path: path, line: nil, detail: "a secret key file needs `public-key` and `secret-key` under `curve`")
    }
    guard let publicKey = CurveKey(z85: publicText.value) else {
      throw .malformed(
        path: path, line: publicText.line, detail: "the public key is not 40 characters of Z85")
    }
    guard let secretKey = CurveKey(z85: secretText.value) else {
      throw .malformed(
        path: path, line: secretText.line, detail: "the secret key is not 40 characters of Z85")
    }
    return CurveKeyPair(
      name: fields["metadata/name"]?.value ?? stem(path), publicKey: publicKey, secretKey: secretKey)
  }

  /// The file's name without its suffix: `edge-3.key` → `edge-3`.
  public static func stem(_ path: String) -> String {
    let file = (path as NSString).lastPathComponent
    for suffix in [secretSuffix, publicSuffix] where file.hasSuffix(suffix) {
      return String(file.dropLast(suffix.count))
    }
    return file
  }

  // MARK: ZPL

  /// The subset of ZPL (ZeroMQ property language) that certificates use: top-level
  /// section names, indented `name = "value"` lines beneath them, `#` comments.
  static func parse(_ path: String) throws(KeyFileError) -> [String: (value: String, line: Int)] {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      if !FileManager.default.fileExists(atPath: path) {
        throw .missing(path: path, hint: "make one with `pinpool keys generate --out DIR --name NAME`")
      }
      throw .unreadable(path: path, detail: error.localizedDescription)
    }
    guard data.count <= 64 * 1024 else { throw .malformed(path: path, line: nil, detail: "over 64 KiB") }
    guard let text = String(data: data, encoding: .utf8) else {
      throw .malformed(path: path, line: nil, detail: "not UTF-8 text")
    }
    var fields: [String: (value: String, line: Int)] = [:]
    var section = ""
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let lineNumber = index + 1
      let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
      let indented = line.first == " " || line.first == "\t"
      guard let equals = trimmed.firstIndex(of: "=") else {
        // A section (or a nested one, which certificates do not use; its name still counts).
        if !indented { section = trimmed }
        continue
      }
      let name = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
      var value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
      if let quote = value.first, quote == "\"" || quote == "'" {
        guard value.count >= 2, value.last == quote else {
          throw .malformed(path: path, line: lineNumber, detail: "unterminated quoted value")
        }
        value = String(value.dropFirst().dropLast())
      } else if let hash = value.firstIndex(of: "#") {
        value = value[..<hash].trimmingCharacters(in: .whitespaces)
      }
      guard !name.isEmpty else {
        throw .malformed(path: path, line: lineNumber, detail: "a value without a name")
      }
      fields[indented ? "\(section)/\(name)" : name] = (value, lineNumber)
    }
    return fields
  }

  private static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "\"", with: "'")
  }

  private static func create(_ path: String, _ text: String, mode: mode_t) throws(KeyFileError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else {
      if errno == EEXIST { throw .exists(path: path) }
      throw .unreadable(path: path, detail: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    // The umask may have taken bits away from a public key; never added any to a secret.
    _ = fchmod(fd, mode)
    do throws(WriteAll.Failure) { try WriteAll.write(fd, Array(text.utf8)) } catch {
      throw .unreadable(path: path, detail: error.reason)
    }
    guard fsync(fd) == 0 else { throw .unreadable(path: path, detail: String(cString: strerror(errno))) }
  }
}
