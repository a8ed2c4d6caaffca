/* The Vala binding compiles and works: open an image, plan a rebase. */
int main (string[] args) {
    try {
        var image = Rechain.Image.open (args[1], null, Rechain.ImageOpenFlags.NONE, null);
        stdout.printf ("%s %s %llu\n", image.format, image.backing_file ?? "-", image.virtual_size);
        var job = new Rechain.RebaseJob (args[1], "", null);
        image = null;
        var stats = job.plan (null);
        stdout.printf ("planned %llu\n", stats.get_image_bytes_written (0));
        return 0;
    } catch (Error e) {
        stderr.printf ("error: %s\n", e.message);
        return 1;
    }
}
