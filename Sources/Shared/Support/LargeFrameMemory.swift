import CZeroMQ

/// Glibc's allocator serves a request over its mmap threshold (128 KiB, raised only as
/// such blocks are freed) with fresh pages from the kernel and returns them on free. A
/// daemon receiving or sending a log batch of about 1 MiB every few milliseconds then
/// spends a tenth of its time faulting in and zeroing pages it just gave back. Daemons
/// call this once at start: blocks up to 4 MiB come from the heap and are reused, and
/// the heap keeps up to 8 MiB of free space at its top instead of trimming after every
/// burst.
public enum LargeFrameMemory {
  public static func configure() {
    _ = mallopt(M_MMAP_THRESHOLD, 4 << 20)
    _ = mallopt(M_TRIM_THRESHOLD, 8 << 20)
  }
}
