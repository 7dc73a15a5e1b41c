/// Why key material could not be used. Each case names the file and what to do, because
/// the person reading it is setting up a machine, not debugging Pinpool.
public enum KeyFileError: Error, CustomStringConvertible, Sendable, Equatable {
  case missing(path: String, hint: String)
  case unreadable(path: String, detail: String)
  case malformed(path: String, line: Int?, detail: String)
  case exposed(path: String, mode: Int)
  case ambiguous(folder: String, found: [String])
  case duplicate(key: String, first: String, second: String)
  case exists(path: String)
  case unsupported(String)

  public var description: String {
    switch self {
    case .missing(let path, let hint): "\(path): no such key file; \(hint)"
    case .unreadable(let path, let detail): "\(path): cannot read: \(detail)"
    case .malformed(let path, let line, let detail):
      "\(path)\(line.map { ":\($0)" } ?? ""): not a CURVE key file: \(detail)"
    case .exposed(let path, let mode):
      "\(path): a secret key must be readable by its owner only, but its mode is "
        + "\(String(mode, radix: 8)); run `chmod 600 \(path)`"
    case .ambiguous(let folder, let found):
      "\(folder): expected one key pair (NAME.key_secret), found \(found.count): \(found.joined(separator: ", "))"
    case .duplicate(let key, let first, let second):
      "the public key \(key) is enrolled twice, in \(first) and \(second); keep one"
    case .exists(let path): "\(path) exists; refusing to overwrite a key (move it away first)"
    case .unsupported(let detail): detail
    }
  }
}
