package potok.compat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Objects;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The check runner and assertions. Every check runs on its own thread with a deadline so one that
 * hangs is reported by name (with where it hung) instead of stalling the whole program. Each check
 * prints exactly one line, {@code PASS name Nms} or {@code FAIL name: reason}; the Rust test that
 * starts this program compares those lines with its list of known failures.
 */
final class Checks {
    /** Longer than any client timeout used by a check, so a check normally fails on its own. */
    static final long CHECK_DEADLINE_MS = 120_000;

    interface Body {
        void run() throws Exception;
    }

    /** Thrown by the assertions; its message is the whole failure report. */
    static final class CheckFailed extends RuntimeException {
        CheckFailed(String message) {
            super(message);
        }
    }

    private final String filter;
    int passed;
    int failed;

    Checks(String filter) {
        this.filter = filter;
    }

    /** Runs one check unless the name filter excludes it. */
    void check(String name, Body body) {
        if (filter != null && !name.contains(filter)) {
            return;
        }
        AtomicReference<Throwable> error = new AtomicReference<>();
        long start = System.nanoTime();
        Thread t = new Thread(() -> {
            try {
                body.run();
            } catch (Throwable e) {
                error.set(e);
            }
        }, "check " + name);
        t.setDaemon(true);
        t.start();
        try {
            t.join(CHECK_DEADLINE_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        String failure = null;
        if (t.isAlive()) {
            StringBuilder where = new StringBuilder();
            for (StackTraceElement e : t.getStackTrace()) {
                where.append(" at ").append(e);
                if (where.length() > 600) {
                    break;
                }
            }
            t.interrupt();
            failure = "timed out after " + ms + " ms;" + where;
        } else if (error.get() != null) {
            failure = describe(error.get());
        }
        if (failure == null) {
            passed++;
            System.out.println("PASS " + name + " " + ms + "ms");
        } else {
            failed++;
            System.out.println("FAIL " + name + ": " + failure.replace('\n', ' '));
        }
        System.out.flush();
    }

    private static String describe(Throwable e) {
        if (e instanceof CheckFailed) {
            return e.getMessage();
        }
        StringWriter s = new StringWriter();
        e.printStackTrace(new PrintWriter(s));
        String trace = s.toString();
        return trace.length() > 1500 ? trace.substring(0, 1500) + "..." : trace;
    }

    // ---- assertions -------------------------------------------------------------------------

    static CheckFailed fail(String message) {
        return new CheckFailed(message);
    }

    static void isTrue(boolean condition, String what) {
        if (!condition) {
            throw fail(what);
        }
    }

    static void eq(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            throw fail(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }

    /** The exception behind ExecutionException/CompletionException wrappers. */
    static Throwable unwrap(Throwable e) {
        while ((e instanceof ExecutionException || e instanceof CompletionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return e;
    }

    /** Runs {@code body}, requires it to throw {@code type} (possibly wrapped by a future). */
    static <T extends Throwable> T expectThrows(Class<T> type, String what, Body body) {
        try {
            body.run();
        } catch (Throwable e) {
            Throwable cause = unwrap(e);
            if (type.isInstance(cause)) {
                return type.cast(cause);
            }
            throw fail(what + ": expected " + type.getSimpleName() + " but got " + cause);
        }
        throw fail(what + ": expected " + type.getSimpleName() + " but it succeeded");
    }

    /** Polls {@code condition} every 100 ms until it holds or {@code timeoutMs} passes. */
    static void waitUntil(long timeoutMs, String what, java.util.function.BooleanSupplier condition)
            throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (!condition.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) {
                throw fail("timed out after " + timeoutMs + " ms waiting for " + what);
            }
            Thread.sleep(100);
        }
    }
}
