/* The Vala binding compiles and works: open an image, plan a rebase. */
int main (string[] args) {
    try {
        var image = Rechain.Image.open (args[1], null, Rechain.ImageOpenFlags.NONE, null);
        stdout.printf ("%s %s %llu\n", image.format, image.backing_file ?? "-", image.virtual_size);
        var info = image.get_info ();
        stdout.printf ("info %s %llu %u\n", info.format, info.cluster_size, info.snapshots.get_n_items ());
        var job = new Rechain.RebaseJob (args[1], "", null);
        image = null;
        var stats = job.plan (null);
        stdout.printf ("planned %llu\n", stats.get_images ()[0].bytes_written);
        return 0;
    } catch (Error e) {
        stderr.printf ("error: %s\n", e.message);
        return 1;
    }
}
