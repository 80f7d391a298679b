#include "densenet/io/atomic_file.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace densenet {

namespace {

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Writes all of `contents` to `fd` (opened on `file`), closes it; `sync` flushes to disk first.
void write_all(const std::string& requested, const std::string& file, int fd,
               std::string_view contents, bool sync) {
  TORCH_CHECK(fd >= 0, "cannot write '", requested, "': ", std::strerror(errno),
              file == requested ? "" : " (writing '" + file + "')");
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : EIO;
      ::close(fd);
      TORCH_CHECK(false, "cannot write '", requested, "': ", std::strerror(error));
    }
    written += static_cast<size_t>(n);
  }
  const int sync_error = sync && ::fsync(fd) != 0 ? errno : 0;
  const int close_error = ::close(fd) != 0 ? errno : 0;
  TORCH_CHECK(sync_error == 0 && close_error == 0, "cannot write '", requested,
              "': ", std::strerror(sync_error != 0 ? sync_error : close_error));
}

}  // namespace

void write_file_atomically(const std::string& requested, std::string_view contents) {
  // Follow symlinks (all levels) so that the link survives and its target gets the bytes.
  std::string path = requested;
  if (char* resolved = ::realpath(requested.c_str(), nullptr)) {
    path = resolved;
    std::free(resolved);
  } else {
    // A dangling link: create its target (as `>` does), do not replace the link.
    char target[PATH_MAX];
    const ssize_t length = ::readlink(requested.c_str(), target, sizeof(target) - 1);
    if (length > 0) {
      const std::string link_target(target, static_cast<size_t>(length));
      path = link_target[0] == '/' ? link_target : directory_of(requested) + "/" + link_target;
    }
  }
  struct stat existing {};
  const bool exists = ::stat(path.c_str(), &existing) == 0;
  if (exists) {
    const mode_t type = existing.st_mode & S_IFMT;
    TORCH_CHECK(type != S_IFDIR, "cannot write '", requested,
                "': it is a directory; give a file name");
    TORCH_CHECK(type != S_IFBLK && type != S_IFSOCK, "cannot write '", requested, "': it is a ",
                type == S_IFBLK ? "block device" : "socket", ", not a regular file");
    if (type == S_IFCHR || type == S_IFIFO) {
      write_all(requested, path, ::open(path.c_str(), O_WRONLY | O_CLOEXEC), contents,
                /*sync=*/false);
      return;
    }
  }
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  // O_EXCL: never write through a file (or link) that someone else put at the temporary name.
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd >= 0 && exists) {
    // Keep the replaced file's permissions (rename would give it the temporary's).
    if (::fchmod(fd, existing.st_mode & 07777) != 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      TORCH_CHECK(false, "cannot write '", requested, "': ", std::strerror(error));
    }
  }
  try {
    write_all(requested, temporary, fd, contents, /*sync=*/true);
  } catch (...) {
    ::unlink(temporary.c_str());
    throw;
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    TORCH_CHECK(false, "cannot replace '", requested, "': ", std::strerror(error));
  }
  // Make the rename itself durable; failing to open the directory is not worth an error.
  const int dir_fd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

std::string read_file(const std::string& path) {
  struct stat info {};
  TORCH_CHECK(::stat(path.c_str(), &info) == 0, "cannot read '", path, "': ", std::strerror(errno));
  TORCH_CHECK(!S_ISDIR(info.st_mode), "cannot read '", path, "': it is a directory");
  std::ifstream stream(path, std::ios::binary);
  TORCH_CHECK(stream.good(), "cannot read '", path, "': ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  TORCH_CHECK(!stream.bad(), "cannot read '", path, "': I/O error");
  return buffer.str();
}

}  // namespace densenet
